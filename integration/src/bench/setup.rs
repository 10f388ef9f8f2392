//! The setups `make bench` compares and the Envoy bootstraps each one runs.
//!
//! Every bootstrap starts as the harness's sidecar (`Sidecar::bootstrap`, the same one the
//! scenario tests use) with Istio's root ids (`stats_inbound` / `stats_outbound`, so neither
//! build reads the direction per request), then is adjusted for the setup: the empty Wasm
//! fixture instead of meshstats, the dynamic module (the native contract: docs/benchmarks.md)
//! instead of the Wasm filter, Envoy's own JSON access log, and in the one-Envoy mode a direct
//! response instead of the upstream route. Access logs go to a file logger on `/dev/null` (or
//! into `log_dir` when given), never to a terminal, which would throttle Envoy.

use crate::envoy::Envoy;
use crate::mesh::{service_metadata, workload_metadata, Sidecar, RATINGS_SERVICE};
use crate::paths::{free_port, workspace_root};
use meshstats_cli::Direction;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The filter configuration of the "5 dimensions + JSON log" setups: five custom dimensions on
/// every standard metric and one JSON line per request with the fields of Istio's default JSON
/// access log (the `istio` preset), the same fields as [`envoy_json_logger`] prints.
pub const DIMS_AND_LOG_CONFIG: &str = r#"{"metrics": [{"dimensions": {
  "request_method": "request.method",
  "request_path": "request.url_path | \"/\"",
  "user_agent": "request.useragent | \"-\"",
  "request_host": "request.host | \"-\"",
  "response_flags_short": "response.flags_short | \"-\""}}],
 "logs": [{"name": "istio", "preset": "istio"}]}"#;

/// The filter-state key the Wasm build's log lines are kept under (a Wasm `set_property`).
const WASM_LOG_KEY: &str = "wasm.meshstats_log";
/// The same for the native build: `$MESHSTATS_NATIVE_LOG_KEY`, else this. The native module
/// writes the Wasm build's key, so one access-log format serves both builds.
const NATIVE_LOG_KEY: &str = WASM_LOG_KEY;

/// What sits in the HTTP filter chain before the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// Nothing: Envoy alone.
    None,
    /// `fixtures/empty-wasm`: the proxy-wasm floor.
    EmptyWasm,
    /// `dist/meshstats.wasm`.
    Wasm,
    /// `dist/libmeshstats.so`, an Envoy dynamic module.
    Native,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One Envoy, an INBOUND listener answering with a direct response.
    OneEnvoy,
    /// The client and server sidecars of Bookinfo in front of the harness's backend.
    TwoSidecars,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::OneEnvoy => "one-envoy",
            Mode::TwoSidecars => "two-sidecars",
        }
    }
}

/// One column of the comparison.
#[derive(Debug)]
pub struct Spec {
    /// Its key in `--json` and the row label.
    pub name: &'static str,
    pub build: Build,
    /// The filter configuration (unused without a filter).
    pub config: &'static str,
    /// Envoy's own `json_format` access log (Istio's default fields) on every request.
    pub envoy_json_log: bool,
    /// What the row measures, for the docs and `--help`.
    pub what: &'static str,
}

/// Every setup, in the order of the table.
pub const SETUPS: [Spec; 7] = [
    Spec {
        name: "bare",
        build: Build::None,
        config: "{}",
        envoy_json_log: false,
        what: "Envoy alone",
    },
    Spec {
        name: "envoy_json_log",
        build: Build::None,
        config: "{}",
        envoy_json_log: true,
        what: "Envoy's own json_format access log (Istio's fields), no filter",
    },
    Spec {
        name: "empty_wasm",
        build: Build::EmptyWasm,
        config: "{}",
        envoy_json_log: false,
        what: "the empty Wasm filter (fixtures/empty-wasm): the proxy-wasm floor",
    },
    Spec {
        name: "wasm",
        build: Build::Wasm,
        config: "{}",
        envoy_json_log: false,
        what: "meshstats Wasm, config {}",
    },
    Spec {
        name: "wasm_dims_log",
        build: Build::Wasm,
        config: DIMS_AND_LOG_CONFIG,
        envoy_json_log: false,
        what: "meshstats Wasm, 5 custom dimensions + one JSON log line per request",
    },
    Spec {
        name: "native",
        build: Build::Native,
        config: "{}",
        envoy_json_log: false,
        what: "meshstats native (dynamic module), config {}",
    },
    Spec {
        name: "native_dims_log",
        build: Build::Native,
        config: DIMS_AND_LOG_CONFIG,
        envoy_json_log: false,
        what: "meshstats native, 5 custom dimensions + one JSON log line per request",
    },
];

/// The setup named `name`.
pub fn spec(name: &str) -> Option<&'static Spec> {
    SETUPS.iter().find(|s| s.name == name)
}

/// The modules under test. The empty filter and the native module are optional: their rows
/// say "not built" when the file is absent.
#[derive(Debug, Clone)]
pub struct Artifacts {
    pub wasm: PathBuf,
    pub empty_wasm: PathBuf,
    pub native: PathBuf,
    /// Where access logs go: `None`, `/dev/null`; else one file per Envoy in this directory.
    pub log_dir: Option<PathBuf>,
}

impl Artifacts {
    /// `$MESHSTATS_WASM` (required), `$MESHSTATS_EMPTY_WASM` or `dist/empty-filter.wasm`,
    /// `$MESHSTATS_NATIVE` or `dist/libmeshstats.so`.
    pub fn find(log_dir: Option<PathBuf>) -> Artifacts {
        let optional = |var: &str, default: &str| {
            let root = workspace_root();
            match std::env::var_os(var).filter(|v| !v.is_empty()) {
                Some(v) => root.join(PathBuf::from(v)),
                None => root.join(default),
            }
        };
        Artifacts {
            wasm: crate::wasm_path(),
            empty_wasm: optional("MESHSTATS_EMPTY_WASM", "dist/empty-filter.wasm"),
            native: optional("MESHSTATS_NATIVE", "dist/libmeshstats.so"),
            log_dir,
        }
    }

    /// Why `build` cannot run here, if it cannot.
    pub fn missing(&self, build: Build) -> Option<String> {
        let (path, how) = match build {
            Build::None | Build::Wasm => return None,
            Build::EmptyWasm => (&self.empty_wasm, "make bench builds it"),
            Build::Native => (&self.native, "cargo build --release -p meshstats-native"),
        };
        (!path.is_file()).then(|| format!("not built ({}: {how})", path.display()))
    }

    /// The directory Envoy searches for `libmeshstats.so`: set it as
    /// `ENVOY_DYNAMIC_MODULES_SEARCH_PATH` before starting any Envoy.
    pub fn native_dir(&self) -> Option<&Path> {
        self.native.parent()
    }
}

/// The Envoys of one setup in one mode, running.
pub struct Running {
    pub spec: &'static Spec,
    /// One Envoy (one-Envoy mode) or client then server (two sidecars).
    pub envoys: Vec<Envoy>,
    /// Where the load goes.
    pub entry: SocketAddr,
}

/// Starts `spec` in `mode`; `backend` is the app behind the server sidecar (two sidecars).
pub fn start(
    spec: &'static Spec,
    mode: Mode,
    artifacts: &Artifacts,
    backend: SocketAddr,
) -> Result<Running, String> {
    let tag = spec.name.replace('_', "-");
    match mode {
        Mode::OneEnvoy => {
            let s = sidecar(
                spec,
                &format!("{tag}-1"),
                Direction::Inbound,
                backend,
                "ratings",
            );
            let (envoy, listen) = launch(spec, mode, artifacts, &s)?;
            Ok(Running {
                spec,
                envoys: vec![envoy],
                entry: listen,
            })
        }
        Mode::TwoSidecars => {
            let server = sidecar(
                spec,
                &format!("{tag}-server"),
                Direction::Inbound,
                backend,
                "ratings",
            );
            let (server, server_listen) = launch(spec, mode, artifacts, &server)?;
            let client = sidecar(
                spec,
                &format!("{tag}-client"),
                Direction::Outbound,
                server_listen,
                "productpage",
            );
            let (client, entry) = launch(spec, mode, artifacts, &client)?;
            Ok(Running {
                spec,
                envoys: vec![client, server],
                entry,
            })
        }
    }
}

fn sidecar(
    spec: &Spec,
    name: &str,
    direction: Direction,
    upstream: SocketAddr,
    app: &str,
) -> Sidecar {
    let root_id = match direction {
        Direction::Inbound => "stats_inbound",
        Direction::Outbound => "stats_outbound",
    };
    Sidecar {
        with_filter: spec.build != Build::None,
        root_id: root_id.to_string(),
        cluster_metadata: Some(service_metadata(RATINGS_SERVICE)),
        // Always the Wasm bootstrap, whatever `$MESHSTATS_BUILD` says: each setup then puts
        // its own filter where the Wasm one was, the native one included.
        build: meshstats_cli::Build::Wasm,
        // Envoy's defaults (5 s stats flush, 1 s file flush), not the tests' 100 ms: a flush
        // costs CPU, and the counters checked afterwards need none.
        stats_flush_interval: None,
        file_flush_interval: None,
        ..Sidecar::new(name, direction, upstream, workload_metadata(app, "v1")).config(spec.config)
    }
}

/// Starts one Envoy from `sidecar`'s adjusted bootstrap on free ports, retrying when another
/// process took a port in between.
fn launch(
    spec: &Spec,
    mode: Mode,
    artifacts: &Artifacts,
    sidecar: &Sidecar,
) -> Result<(Envoy, SocketAddr), String> {
    let mut attempt = 1;
    loop {
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut bootstrap = sidecar.bootstrap(listen, admin);
        let log = artifacts
            .log_dir
            .as_ref()
            .map(|d| d.join(format!("{}.log", sidecar.name)));
        adjust(
            &mut bootstrap,
            spec,
            mode,
            artifacts,
            &sidecar.root_id,
            log.as_deref(),
        )
        .map_err(|e| format!("{}: {e}", sidecar.name))?;
        match Envoy::start(&sidecar.name, &bootstrap, admin) {
            Ok(envoy) => return Ok((envoy, listen)),
            Err(e) if attempt < 3 && e.contains("Address already in use") => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

const HCM: &str = "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config";

/// Turns the harness's sidecar bootstrap into the one `spec` measures in `mode`.
pub fn adjust(
    bootstrap: &mut Value,
    spec: &Spec,
    mode: Mode,
    artifacts: &Artifacts,
    root_id: &str,
    log_file: Option<&Path>,
) -> Result<(), String> {
    let log_path = log_file.map_or("/dev/null".into(), |p| p.display().to_string());
    if spec.build == Build::Native {
        // Labelled metrics: the stat-name regexes are for the Wasm build's encoded names.
        if let Some(stats) = bootstrap
            .get_mut("stats_config")
            .and_then(Value::as_object_mut)
        {
            stats.remove("stats_tags");
        }
        // Without it Envoy keeps its `dynamicmodulescustom.` prefix on the labelled stats'
        // names, and they would not be the Wasm build's `istio_*` on /stats/prometheus. (The
        // bench's configurations set no histogram buckets, whose matchers would need the
        // native names too.)
        let flag = "envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix";
        let layers = bootstrap
            .as_object_mut()
            .ok_or("the bootstrap is not an object")?
            .entry("layered_runtime")
            .or_insert_with(|| json!({ "layers": [] }))
            .get_mut("layers")
            .and_then(Value::as_array_mut)
            .ok_or("layered_runtime has no layers list")?;
        layers.push(json!({ "name": "meshstats-native", "static_layer": { flag: true } }));
    }
    let hcm = bootstrap
        .pointer_mut(HCM)
        .and_then(Value::as_object_mut)
        .ok_or("the bootstrap has no HTTP connection manager")?;
    if mode == Mode::OneEnvoy {
        let route = hcm
            .get_mut("route_config")
            .and_then(|r| r.pointer_mut("/virtual_hosts/0/routes/0"))
            .ok_or("the bootstrap has no route")?;
        *route = json!({
            "match": { "prefix": "/" },
            "direct_response": { "status": 200, "body": { "inline_string": "meshstats bench\n" } },
        });
    }
    let filters = hcm
        .get_mut("http_filters")
        .and_then(Value::as_array_mut)
        .ok_or("the bootstrap has no http_filters")?;
    let wasm = filters
        .iter_mut()
        .find(|f| f["name"] == "envoy.filters.http.wasm");
    match (spec.build, wasm) {
        (Build::None, None) | (Build::Wasm, Some(_)) => {}
        (Build::EmptyWasm, Some(f)) => {
            let file = f
                .pointer_mut("/typed_config/config/vm_config/code/local/filename")
                .ok_or("the Wasm filter has no code.local.filename")?;
            *file = json!(artifacts.empty_wasm.display().to_string());
        }
        (Build::Native, Some(f)) => *f = native_http_filter(root_id, spec.config),
        (build, f) => {
            return Err(format!(
                "{build:?}: the bootstrap {} a Wasm filter",
                if f.is_some() { "has" } else { "lacks" }
            ))
        }
    }
    let logs = hcm.entry("access_log").or_insert_with(|| json!([]));
    let logs = logs.as_array_mut().ok_or("access_log is not a list")?;
    for log in logs.iter_mut() {
        to_file_logger(log, &log_path);
        if spec.build == Build::Native {
            // A native module that keeps its lines under another key needs only this.
            let key = std::env::var("MESHSTATS_NATIVE_LOG_KEY")
                .ok()
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| NATIVE_LOG_KEY.to_string());
            let text = log.to_string().replace(WASM_LOG_KEY, &key);
            *log = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        }
    }
    if spec.envoy_json_log {
        logs.push(envoy_json_logger(&log_path));
    }
    if logs.is_empty() {
        hcm.remove("access_log");
    }
    Ok(())
}

/// The native build's HTTP filter (the contract in docs/benchmarks.md): the module by name,
/// the root id as `filter_name`, the configuration JSON as a `StringValue`.
pub fn native_http_filter(root_id: &str, config: &str) -> Value {
    json!({
        "name": "envoy.filters.http.dynamic_modules",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            "dynamic_module_config": { "name": "meshstats" },
            "filter_name": root_id,
            "filter_config": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": config,
            },
        },
    })
}

/// A stdout logger becomes a file logger on `path` with the same format and filter: the same
/// formatting work, written where no terminal slows it down.
fn to_file_logger(log: &mut Value, path: &str) {
    if log["name"] != "envoy.access_loggers.stdout" {
        return;
    }
    let format = log["typed_config"]["log_format"].clone();
    log["name"] = json!("envoy.access_loggers.file");
    log["typed_config"] = json!({
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": path,
        "log_format": format,
    });
}

/// Envoy's own JSON access log with the fields of Istio's default (`EnvoyJSONLogFormatIstio`,
/// the `istio` preset's table in docs/access-log-presets.md): what the log budget compares the
/// native build's log line with.
pub fn envoy_json_logger(path: &str) -> Value {
    let fields = [
        ("start_time", "%START_TIME%"),
        ("method", "%REQ(:METHOD)%"),
        ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
        ("protocol", "%PROTOCOL%"),
        ("response_code", "%RESPONSE_CODE%"),
        ("response_flags", "%RESPONSE_FLAGS%"),
        ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
        (
            "connection_termination_details",
            "%CONNECTION_TERMINATION_DETAILS%",
        ),
        (
            "upstream_transport_failure_reason",
            "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
        ),
        ("bytes_received", "%BYTES_RECEIVED%"),
        ("bytes_sent", "%BYTES_SENT%"),
        ("duration", "%DURATION%"),
        (
            "upstream_service_time",
            "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
        ),
        ("x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"),
        ("user_agent", "%REQ(USER-AGENT)%"),
        ("request_id", "%REQ(X-REQUEST-ID)%"),
        ("authority", "%REQ(:AUTHORITY)%"),
        ("upstream_host", "%UPSTREAM_HOST%"),
        ("upstream_cluster", "%UPSTREAM_CLUSTER_RAW%"),
        ("upstream_local_address", "%UPSTREAM_LOCAL_ADDRESS%"),
        ("downstream_local_address", "%DOWNSTREAM_LOCAL_ADDRESS%"),
        ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
        ("requested_server_name", "%REQUESTED_SERVER_NAME%"),
        ("route_name", "%ROUTE_NAME%"),
    ];
    let format: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": path,
            "log_format": { "json_format": format },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifacts() -> Artifacts {
        Artifacts {
            wasm: "/m/meshstats.wasm".into(),
            empty_wasm: "/m/empty.wasm".into(),
            native: "/m/libmeshstats.so".into(),
            log_dir: None,
        }
    }

    fn bootstrap_of(name: &str, mode: Mode) -> Value {
        let spec = spec(name).unwrap();
        let upstream = SocketAddr::from(([127, 0, 0, 1], 9));
        let s = sidecar(spec, "t", Direction::Inbound, upstream, "ratings");
        let listen = SocketAddr::from(([127, 0, 0, 1], 10));
        let admin = SocketAddr::from(([127, 0, 0, 1], 11));
        let mut options = s.options(listen, admin);
        // Only written down, so the test needs no module.
        options.wasm_path = s.with_filter.then(|| PathBuf::from("/m/meshstats.wasm"));
        let mut b = meshstats_cli::envoy_bootstrap(&options);
        adjust(&mut b, spec, mode, &artifacts(), &s.root_id, None).unwrap();
        b
    }

    fn filter_names(b: &Value) -> Vec<String> {
        b.pointer(&format!("{HCM}/http_filters"))
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn each_setup_has_exactly_its_filter_before_the_router() {
        let router = "envoy.filters.http.router";
        let cases = [
            ("bare", vec![router]),
            ("envoy_json_log", vec![router]),
            ("empty_wasm", vec!["envoy.filters.http.wasm", router]),
            ("wasm", vec!["envoy.filters.http.wasm", router]),
            ("native", vec!["envoy.filters.http.dynamic_modules", router]),
        ];
        for (name, want) in cases {
            assert_eq!(
                filter_names(&bootstrap_of(name, Mode::OneEnvoy)),
                want,
                "{name}"
            );
        }
        let empty = bootstrap_of("empty_wasm", Mode::TwoSidecars);
        let code =
            format!("{HCM}/http_filters/0/typed_config/config/vm_config/code/local/filename");
        assert_eq!(empty.pointer(&code), Some(&json!("/m/empty.wasm")));
    }

    #[test]
    fn native_filter_follows_the_contract_and_drops_the_stat_name_regexes() {
        let b = bootstrap_of("native_dims_log", Mode::OneEnvoy);
        let f = &b.pointer(&format!("{HCM}/http_filters/0")).unwrap()["typed_config"];
        assert_eq!(f["dynamic_module_config"], json!({ "name": "meshstats" }));
        assert_eq!(f["filter_name"], json!("stats_inbound"));
        assert_eq!(f["filter_config"]["value"], json!(DIMS_AND_LOG_CONFIG));
        assert!(
            b["stats_config"].get("stats_tags").is_none(),
            "{}",
            b["stats_config"]
        );
        let flag = "envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix";
        let layer = b.pointer("/layered_runtime/layers/0/static_layer").unwrap();
        assert_eq!(layer[flag], json!(true));
        let wasm = bootstrap_of("wasm_dims_log", Mode::OneEnvoy);
        assert!(wasm["stats_config"]["stats_tags"]
            .as_array()
            .is_some_and(|t| !t.is_empty()));
        // The log line is read from the native build's filter-state key, into /dev/null.
        let log = &b.pointer(&format!("{HCM}/access_log")).unwrap()[0];
        assert_eq!(log["name"], json!("envoy.access_loggers.file"));
        assert_eq!(log["typed_config"]["path"], json!("/dev/null"));
        let text = log.to_string();
        assert!(text.contains(NATIVE_LOG_KEY), "{text}");
    }

    #[test]
    fn one_envoy_mode_answers_directly_and_two_sidecars_route_upstream() {
        let route = format!("{HCM}/route_config/virtual_hosts/0/routes/0");
        let one = bootstrap_of("bare", Mode::OneEnvoy);
        assert_eq!(
            one.pointer(&route).unwrap()["direct_response"]["status"],
            json!(200)
        );
        let two = bootstrap_of("bare", Mode::TwoSidecars);
        assert!(two.pointer(&route).unwrap()["route"]["cluster"].is_string());
        assert!(one.pointer(&format!("{HCM}/access_log")).is_none());
    }

    #[test]
    fn the_json_log_setups_log_the_same_fields() {
        let envoy = bootstrap_of("envoy_json_log", Mode::OneEnvoy);
        let logs = envoy.pointer(&format!("{HCM}/access_log")).unwrap();
        let format = &logs[0]["typed_config"]["log_format"]["json_format"];
        assert_eq!(format.as_object().map(|m| m.len()), Some(24));
        assert_eq!(format["response_code"], json!("%RESPONSE_CODE%"));
        assert_eq!(logs[0]["typed_config"]["path"], json!("/dev/null"));
        let wasm = bootstrap_of("wasm_dims_log", Mode::OneEnvoy);
        let logs = wasm.pointer(&format!("{HCM}/access_log")).unwrap();
        assert_eq!(logs.as_array().map(Vec::len), Some(1));
        assert!(logs[0].to_string().contains(WASM_LOG_KEY));
    }
}
