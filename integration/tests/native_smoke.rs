//! The native build (`dist/libmeshstats.so`) in a real Envoy, with a hand-written bootstrap:
//! the module loads under `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`, passes traffic, reads request
//! attributes by the ids it assumes for Envoy 1.40 (path, method, response code, user agent),
//! reads the node metadata from `MESHSTATS_NODE_METADATA`, and hands its JSON access log to
//! Envoy's stdout logger through filter state `wasm.meshstats_log` (the key the Wasm build
//! uses). The labelled `istio_*` series need the labelled metrics mode of the metric table
//! (issue 11, part M); this test pins what works without it.

use meshstats_testkit::{artifact, envoy_bin};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: ratings\r\nUser-Agent: smoke/1\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).ok();
    out
}

fn bootstrap(admin: u16, listen: u16, config: &str) -> String {
    let config = serde_json::to_string(config).expect("json");
    format!(
        r#"{{"admin":{{"address":{{"socket_address":{{"address":"127.0.0.1","port_value":{admin}}}}}}},
"static_resources":{{"listeners":[{{"name":"in","address":{{"socket_address":{{"address":"127.0.0.1","port_value":{listen}}}}},
"filter_chains":[{{"filters":[{{"name":"hcm","typed_config":{{
 "@type":"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
 "stat_prefix":"in",
 "access_log":[{{"name":"stdout","typed_config":{{"@type":"type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
   "log_format":{{"text_format_source":{{"inline_string":"MESHSTATS %FILTER_STATE(wasm.meshstats_log:PLAIN)%\n"}}}}}}}}],
 "route_config":{{"virtual_hosts":[{{"name":"all","domains":["*"],"routes":[{{"match":{{"prefix":"/"}},
   "direct_response":{{"status":201,"body":{{"inline_string":"hello"}}}}}}]}}]}},
 "http_filters":[
  {{"name":"meshstats","typed_config":{{"@type":"type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
    "dynamic_module_config":{{"name":"meshstats"}},"filter_name":"stats_inbound",
    "filter_config":{{"@type":"type.googleapis.com/google.protobuf.StringValue","value":{config}}}}}}},
  {{"name":"router","typed_config":{{"@type":"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}}}]
}}}}]}}]}}]}}}}"#
    )
}

#[test]
fn native_module_serves_reads_attributes_and_logs_through_filter_state() {
    let so = artifact("MESHSTATS_NATIVE", "dist/libmeshstats.so", "make build");
    let dir = std::env::temp_dir().join(format!("meshstats-native-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::copy(&so, dir.join("libmeshstats.so")).expect("copy module");
    let (admin, listen) = (free_port(), free_port());
    let config = r#"{"logs":[{"name":"smoke","preset":"istio"}]}"#;
    std::fs::write(dir.join("envoy.json"), bootstrap(admin, listen, config)).expect("bootstrap");
    let mut envoy = Command::new(envoy_bin())
        .args([
            "-c",
            "envoy.json",
            "--concurrency",
            "1",
            "-l",
            "warn",
            "--base-id",
        ])
        .arg(listen.to_string())
        .current_dir(&dir)
        .env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", &dir)
        .env(
            "MESHSTATS_NODE_METADATA",
            r#"{"WORKLOAD_NAME":"ratings-v1","NAMESPACE":"default"}"#,
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start envoy");
    let stdout = envoy.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", listen)).is_err() {
        assert!(
            Instant::now() < deadline,
            "envoy did not listen within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let paths = ["/one", "/two?x=1", "/three"];
    for p in paths {
        let reply = get(listen, p);
        assert!(
            reply.starts_with("HTTP/1.1 201"),
            "the module must pass traffic: {reply}"
        );
        assert!(reply.ends_with("hello"), "{reply}");
    }
    let mut entries = Vec::new();
    while entries.len() < paths.len() && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if let Some(json) = line.strip_prefix("MESHSTATS ") {
                entries.push(serde_json::from_str::<Value>(json).expect("a JSON log line"));
            }
        }
    }
    let _ = envoy.kill();
    let _ = envoy.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        entries.len(),
        paths.len(),
        "one log line per request: {entries:?}"
    );
    for (e, p) in entries.iter().zip(paths) {
        assert_eq!(e["instance"], "smoke");
        assert_eq!(e["path"], p, "request.path (attribute 0): {e}");
        assert_eq!(e["method"], "GET", "request.method (4): {e}");
        assert_eq!(e["response_code"], 201, "response.code (15): {e}");
        assert_eq!(e["user_agent"], "smoke/1", "request.useragent (7): {e}");
        assert_eq!(e["authority"], "ratings", "{e}");
        assert_eq!(e["protocol"], "HTTP/1.1", "request.protocol (10): {e}");
        assert_eq!(
            e["bytes_sent"], 5,
            "response.total_size is headers too; response.size (21) is the body: {e}"
        );
        assert_eq!(
            e["response_code_details"], "direct_response",
            "response.code_details (16): {e}"
        );
    }
}
