//! JSON access logs (`logs[]`) from real Envoy sidecars, printed on stdout by the access
//! logger `meshstats render access-log` renders (docs/access-logs.md). Every line is parsed
//! with serde_json and checked field by field.

use meshstats_integration::load::{self, LoadOptions, LoadResult};
use meshstats_integration::mesh::{workload_metadata, Bookinfo, Sidecar};
use meshstats_integration::{example_config, free_port, http_request, Backend, Envoy, Requests};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const HOST: &str = "ratings:9080";
/// The backend's default body, "hello from backend\n".
const BODY_LEN: u64 = 19;
/// How long to wait for lines that should not come: the test sidecars flush access logs
/// every 100 ms (`Sidecar::file_flush_interval`).
const SETTLE: Duration = Duration::from_millis(600);

/// The regex docs/access-logs.md gives for Fluent Bit's `regex` parser and Vector's
/// `parse_regex`, to pull the JSON out of an Envoy log line in `log_delivery: proxy_log`.
const PROXY_LOG_REGEX: &str = r"wasm log(?: [^ :]+)*: (?<entry>\{.*\})";
/// The native build's lines (docs/native.md): Envoy's `dynamic_modules` logger, the entry
/// right after the source location.
const NATIVE_PROXY_LOG_REGEX: &str = r"\[dynamic_modules\] \[[^\]]*\] (?<entry>\{.*\})";

/// The complete lines on `envoy`'s stdout (each ended by `\n`), as text.
fn complete_lines(envoy: &Envoy) -> Vec<String> {
    let bytes = envoy.stdout();
    let text = String::from_utf8(bytes)
        .unwrap_or_else(|e| panic!("{}: stdout is not UTF-8: {e}", envoy.name()));
    let end = text.rfind('\n').map_or(0, |i| i + 1);
    text[..end]
        .split_terminator('\n')
        .map(str::to_string)
        .collect()
}

/// Waits (up to `timeout`) for `n` lines on stdout, then one more flush interval, and returns
/// them: exactly `n`, and nothing after the last newline.
fn wait_lines(envoy: &Envoy, n: usize, timeout: Duration) -> Vec<String> {
    let start = Instant::now();
    while complete_lines(envoy).len() < n && start.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(SETTLE);
    let stdout = envoy.stdout();
    assert!(
        stdout.is_empty() || stdout.ends_with(b"\n"),
        "{}: stdout ends in a partial line",
        envoy.name()
    );
    let lines = complete_lines(envoy);
    assert_eq!(
        lines.len(),
        n,
        "{}: stdout lines after {:?}:\n{}",
        envoy.name(),
        start.elapsed(),
        shorten(&lines)
    );
    lines
}

fn shorten(lines: &[String]) -> String {
    lines
        .iter()
        .take(20)
        .map(|l| format!("  {}\n", l.chars().take(300).collect::<String>()))
        .collect()
}

/// One line as a JSON object.
fn object(line: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(m)) => m,
        Ok(other) => panic!("not a JSON object: {other} in {line:?}"),
        Err(e) => panic!(
            "not JSON ({e}): {:?}",
            line.chars().take(500).collect::<String>()
        ),
    }
}

/// The top-level keys of a JSON object in the order written.
fn keys_in_order(line: &str) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_str::<Keys>(line)
        .unwrap_or_else(|e| panic!("{e}: {line}"))
        .0
}

/// `level`, `time`, `instance`, then the variables sorted by name.
fn assert_line_order(line: &str) {
    let keys = keys_in_order(line);
    assert!(
        keys.len() >= 3 && keys[..3] == ["level", "time", "instance"],
        "{keys:?} in {line}"
    );
    let mut sorted = keys[3..].to_vec();
    sorted.sort();
    assert_eq!(keys[3..], sorted[..], "variables sorted by name: {line}");
}

// ---- time and duration formats ------------------------------------------------------------

/// Microseconds since the Unix epoch of an RFC 3339 UTC time with exactly six fraction
/// digits, `2018-11-14T01:46:26.528539Z`; `None` for any other shape.
fn parse_time_us(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let shape = b.len() == 27
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            26 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, sec, us) = (n(11..13)?, n(14..16)?, n(17..19)?, n(20..26)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) * 1_000_000) + us)
}

fn now_us() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap()
}

/// Nanoseconds in a Go duration string (`9.486802ms`, `512.3µs`, `1m2.5s`, `0s`).
fn parse_go_duration(s: &str) -> Option<f64> {
    if s == "0" || s == "0s" {
        return Some(0.0);
    }
    let mut rest = s;
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let (unit, scale) = [
            ("ns", 1.0),
            ("us", 1e3),
            ("µs", 1e3),
            ("μs", 1e3),
            ("ms", 1e6),
            ("s", 1e9),
            ("m", 60e9),
            ("h", 3600e9),
        ]
        .into_iter()
        .find(|(u, _)| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")))?;
        total += value * scale;
        rest = &rest[unit.len()..];
    }
    Some(total)
}

#[test]
fn time_and_duration_parsers() {
    assert_eq!(
        parse_time_us("1970-01-01T00:00:01.000002Z"),
        Some(1_000_002)
    );
    assert_eq!(
        parse_time_us("2018-11-14T01:46:26.528539Z"),
        Some(1_542_159_986_528_539)
    );
    assert_eq!(parse_time_us("2018-11-14T01:46:26.528Z"), None);
    assert_eq!(parse_time_us("2018-11-14 01:46:26.528539Z"), None);
    assert_eq!(parse_go_duration("9.486802ms"), Some(9_486_802.0));
    assert_eq!(parse_go_duration("512µs"), Some(512_000.0));
    assert_eq!(parse_go_duration("1m2.5s"), Some(62.5e9));
    assert_eq!(parse_go_duration("0s"), Some(0.0));
    assert_eq!(parse_go_duration("12"), None);
    assert_eq!(parse_go_duration("3 ms"), None);
}

// ---- the Istio 1.0 task's newlog entry ----------------------------------------------------

/// Checks one `newlog` line against the Istio 1.0 task's shape, and returns its latency (ns).
fn check_newlog_line(line: &str, window_us: (i64, i64), code: i64) -> f64 {
    assert_line_order(line);
    let m = object(line);
    let keys: Vec<&str> = m.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "destination",
            "instance",
            "latency",
            "level",
            "responseCode",
            "responseSize",
            "source",
            "time",
            "user"
        ],
        "{line}"
    );
    assert_eq!(
        m["level"], "warn",
        "severity \"warning\" is level warn: {line}"
    );
    assert_eq!(m["instance"], "newlog.logentry.istio-system");
    assert_eq!(m["source"], "productpage");
    assert_eq!(m["destination"], "ratings");
    assert_eq!(m["user"], "unknown", "no mTLS, so no source principal");
    assert_eq!(m["responseCode"], json!(code), "a number");
    assert_eq!(m["responseSize"], json!(BODY_LEN), "a number");
    let time = m["time"]
        .as_str()
        .unwrap_or_else(|| panic!("time is not a string: {line}"));
    let t = parse_time_us(time)
        .unwrap_or_else(|| panic!("time {time:?} is not RFC 3339 with µs and Z"));
    // The request started inside the window (truncated to µs, so at most 1 µs early).
    assert!(
        t >= window_us.0 - 1 && t <= window_us.1,
        "time {time} outside the test's window {window_us:?}"
    );
    let latency = m["latency"]
        .as_str()
        .unwrap_or_else(|| panic!("latency is not a string: {line}"));
    assert!(
        ["ms", "µs", "s"].iter().any(|u| latency.ends_with(u)),
        "latency {latency:?}"
    );
    let ns = parse_go_duration(latency)
        .unwrap_or_else(|| panic!("latency {latency:?} is no Go duration"));
    assert!(
        ns > 0.0 && ns / 1e3 <= (window_us.1 - window_us.0) as f64,
        "latency {latency} longer than the test"
    );
    ns
}

#[test]
fn newlog_entry_end_to_end_on_both_sidecars() {
    let app = Backend::start();
    let config = example_config("new-log.json");
    let mesh = Bookinfo::start(app.addr(), &config, &config).unwrap();
    let start = now_us();
    Requests::get(mesh.entry, "/ratings/7").send(5);
    let end = now_us();
    for envoy in [&mesh.server, &mesh.client] {
        let lines = wait_lines(envoy, 5, Duration::from_secs(10));
        for line in &lines {
            check_newlog_line(line, (start, end), 200);
        }
        // Envoy's own log says nothing about the entries (they are not in proxy_log mode).
        assert!(
            !envoy.log().contains("wasm log meshstats: {"),
            "{}",
            envoy.name()
        );
    }
}

// ---- match, several entries per request -----------------------------------------------------

#[test]
fn match_selects_requests_and_entries_of_one_request_are_separate_lines() {
    let app = Backend::start();
    let config = r#"{"logs": [
        {"name": "errors", "instance": "errors.logentry.default", "match": "response.code >= 500",
         "severity": "'error'", "variables": {"code": "response.code", "path": "request.url_path"}},
        {"name": "all", "instance": "all.logentry.default", "variables": {"code": "response.code"}}]}"#;
    let mesh = Bookinfo::start(app.addr(), config, config).unwrap();
    Requests::get(mesh.entry, "/ratings/7").send(7);
    Requests::get(mesh.entry, "/ratings/7")
        .headers(&[("x-backend-status", "503")])
        .status(503)
        .send(4);
    Requests::get(mesh.entry, "/ratings/7")
        .headers(&[("x-backend-status", "500")])
        .status(500)
        .send(2);
    for envoy in [&mesh.server, &mesh.client] {
        // 13 requests: every one has an `all` line; the 6 failed ones also an `errors` line.
        let lines = wait_lines(envoy, 13 + 6, Duration::from_secs(10));
        let mut count: BTreeMap<(String, i64), usize> = BTreeMap::new();
        for line in &lines {
            assert_line_order(line);
            let m = object(line);
            let instance = m["instance"].as_str().unwrap().to_string();
            match instance.as_str() {
                "errors.logentry.default" => {
                    assert_eq!(m.len(), 5, "{line}");
                    assert_eq!(m["level"], "error");
                    assert_eq!(m["path"], "/ratings/7");
                }
                "all.logentry.default" => {
                    assert_eq!(m.len(), 4, "{line}");
                    assert_eq!(m["level"], "info", "the default severity");
                }
                other => panic!("instance {other}"),
            }
            *count
                .entry((instance, m["code"].as_i64().unwrap()))
                .or_default() += 1;
        }
        let want: BTreeMap<(String, i64), usize> = [
            (("all.logentry.default", 200), 7),
            (("all.logentry.default", 500), 2),
            (("all.logentry.default", 503), 4),
            (("errors.logentry.default", 500), 2),
            (("errors.logentry.default", 503), 4),
        ]
        .into_iter()
        .map(|((i, c), n)| ((i.to_string(), c), n))
        .collect();
        assert_eq!(count, want, "{}", envoy.name());
    }
}

/// A configuration whose entries never match prints nothing at all: not an empty line,
/// not Envoy's `-`.
#[test]
fn requests_without_an_entry_print_nothing() {
    let app = Backend::start();
    let config = r#"{"logs": [{"name": "never", "match": "response.code == 999", "variables": {"c": "response.code"}}]}"#;
    let mesh = Bookinfo::start(app.addr(), config, config).unwrap();
    Requests::get(mesh.entry, "/ratings/7").send(5);
    std::thread::sleep(SETTLE * 2);
    for envoy in [&mesh.server, &mesh.client] {
        assert_eq!(
            String::from_utf8_lossy(&envoy.stdout()),
            "",
            "{}",
            envoy.name()
        );
    }
}

// ---- hostile header values ------------------------------------------------------------------

/// Sends `GET /ratings/7` on a fresh connection with raw header bytes, returns the status.
fn raw_request(addr: SocketAddr, headers: &[(&str, &[u8])]) -> u16 {
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut req =
        format!("GET /ratings/7 HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n").into_bytes();
    for (k, v) in headers {
        req.extend_from_slice(k.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(v);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    conn.write_all(&req).unwrap();
    let mut status = String::new();
    BufReader::new(conn).read_line(&mut status).unwrap();
    status
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {status:?}"))
}

#[test]
fn hostile_header_values_round_trip() {
    let app = Backend::start();
    let config = r#"{"logs": [{"name": "evil", "variables": {
        "case": "request.headers['x-case']",
        "evil": "request.headers['x-evil'] | 'absent'"}}]}"#;
    let big: Vec<u8> = (0..60_000)
        .map(|i| b"abcdefghij\"\\{}[]:,"[i % 18])
        .collect();
    // Values Envoy accepts. The only control characters it lets through are tab and a bare
    // CR, which its HTTP/1 parser drops: the app gets the value without it, and so does the
    // filter.
    let accepted: Vec<&[u8]> = vec![
        br#"she said "hi" \ back\slash \\ \""#,
        b"tab\there\t\tand\ttabs",
        br#"","level":"error","injected":{"x":1},"#,
        br#"r\u00e4ksm\u00f6rg\u00e5s \u2713 \ud83d\ude00"#,
        "räksmörgås ✓ 日本 😀".as_bytes(),
        "line\u{2028}sep\u{2029}para".as_bytes(),
        b"bare\rcarriage return",
        &big,
    ];
    let with_limit = |s: Sidecar| Sidecar {
        max_request_headers_kb: Some(96),
        ..s.config(config)
    };
    let mesh = Bookinfo::start_with(app.addr(), with_limit, with_limit).unwrap();
    for (i, value) in accepted.iter().enumerate() {
        let case = i.to_string();
        assert_eq!(
            raw_request(
                mesh.entry,
                &[("x-case", case.as_bytes()), ("x-evil", value)]
            ),
            200,
            "case {i}"
        );
    }
    // What the app got, by case.
    let at_app: BTreeMap<String, String> = app
        .requests()
        .into_iter()
        .map(|r| (r.headers["x-case"].clone(), r.headers["x-evil"].clone()))
        .collect();
    assert_eq!(at_app["6"], "barecarriage return", "Envoy drops a bare CR");
    for (i, value) in accepted.iter().enumerate() {
        if i != 6 {
            assert_eq!(
                at_app[&i.to_string()].as_bytes(),
                *value,
                "case {i} reached the app unchanged"
            );
        }
    }
    for envoy in [&mesh.server, &mesh.client] {
        let lines = wait_lines(envoy, accepted.len(), Duration::from_secs(10));
        let mut seen = BTreeSet::new();
        for line in &lines {
            assert!(
                !line.contains(|c: char| c.is_control()),
                "raw control characters in {line:?}"
            );
            let m = object(line);
            let case = m["case"].as_str().unwrap().to_string();
            assert_eq!(
                m["evil"].as_str(),
                Some(at_app[&case].as_str()),
                "case {case} on {}",
                envoy.name()
            );
            assert_eq!(m.len(), 5, "nothing injected: {m:?}");
            seen.insert(case);
        }
        assert_eq!(seen.len(), accepted.len());
    }
}

/// Envoy refuses other control characters, and DEL, in header values (400). It still runs
/// the filter chain for its reply, so the client sidecar logs each refused request, with
/// the headers it could not parse absent; nothing reaches the server.
#[test]
fn requests_envoy_refuses_are_logged_by_the_sidecar_that_refused_them() {
    let app = Backend::start();
    let config = r#"{"logs": [{"name": "evil", "variables": {"code": "response.code", "evil": "request.headers['x-evil'] | 'absent'"}}]}"#;
    let mesh = Bookinfo::start(app.addr(), config, config).unwrap();
    let refused = [
        &b"nul\x00byte"[..],
        b"soh\x01",
        b"bell\x07",
        b"esc\x1b[31m",
        b"vt\x0bff\x0c",
        b"del\x7f",
    ];
    for (i, value) in refused.iter().enumerate() {
        assert_eq!(
            raw_request(mesh.entry, &[("x-evil", value)]),
            400,
            "case {i}: {value:?}"
        );
    }
    for line in wait_lines(&mesh.client, refused.len(), Duration::from_secs(10)) {
        let m = object(&line);
        assert_eq!(
            (m.len(), &m["code"], &m["evil"]),
            (5, &json!(400), &json!("absent")),
            "{line}"
        );
    }
    assert_eq!(String::from_utf8_lossy(&mesh.server.stdout()), "");
    assert_eq!(app.request_count(), 0);
}

/// Envoy accepts any byte from 0x80 up in a header value (RFC 9110's obs-text), UTF-8 or
/// not. Bytes that are not UTF-8 reach the log as U+FFFD, and the filter goes on working for
/// the requests after.
#[test]
fn header_values_that_are_not_utf8_are_logged_lossily() {
    let app = Backend::start();
    let config = r#"{"logs": [{"name": "evil", "variables": {"evil": "request.headers['x-evil'] | 'absent'"}}]}"#;
    let mesh = Bookinfo::start(app.addr(), config, config).unwrap();
    assert_eq!(
        raw_request(
            mesh.entry,
            &[("x-evil", b"latin1 \xe4\xf6 and a lone \xff")]
        ),
        200
    );
    assert_eq!(raw_request(mesh.entry, &[("x-evil", b"after")]), 200);
    assert_eq!(
        app.requests()[0].headers["x-evil"],
        "latin1 \u{fffd}\u{fffd} and a lone \u{fffd}",
        "as the app decodes it too"
    );
    for envoy in [&mesh.server, &mesh.client] {
        let lines = wait_lines(envoy, 2, Duration::from_secs(10));
        let values: Vec<Value> = lines.iter().map(|l| object(l)["evil"].clone()).collect();
        assert_eq!(
            values,
            [
                json!("latin1 \u{fffd}\u{fffd} and a lone \u{fffd}"),
                json!("after")
            ],
            "{}",
            envoy.name()
        );
    }
}

// ---- nothing lost under load ----------------------------------------------------------------

#[test]
fn ten_thousand_requests_from_eight_connections_ten_thousand_lines() {
    const WANT: u64 = 10_000;
    const BUDGET: Duration = Duration::from_secs(45);
    let app = Backend::start();
    let mut config: Value = serde_json::from_str(&example_config("new-log.json")).unwrap();
    config["logs"][0]["variables"]["requestId"] = json!("request.id");
    let config = config.to_string();
    // Envoy's own flushing (every 10 s, or once 64 KiB are buffered), as deployed.
    let sidecar = |s: Sidecar| Sidecar {
        file_flush_interval: None,
        ..s.config(&config)
    };
    let mesh = Bookinfo::start_with(app.addr(), sidecar, sidecar).unwrap();

    let started = Instant::now();
    let start_us = now_us();
    let mut total = LoadResult::default();
    // Rounds sized from the rate so far, until WANT requests completed (bounded by BUDGET).
    let mut round = Duration::from_secs(2);
    while total.completed < WANT && started.elapsed() < BUDGET {
        let r = load::run(mesh.entry, &LoadOptions::new(8, round, "/ratings/7", HOST));
        total.merge(&r);
        let rate = (total.completed as f64 / started.elapsed().as_secs_f64()).max(100.0);
        let left = WANT.saturating_sub(total.completed) as f64 / rate * 1.1 + 0.2;
        round = Duration::from_secs_f64(
            left.min(BUDGET.saturating_sub(started.elapsed()).as_secs_f64())
                .max(0.2),
        );
    }
    let end_us = now_us();
    let elapsed = started.elapsed();
    assert_eq!(total.failures(), 0, "{:?}", total.errors);
    assert!(
        total.completed >= WANT,
        "only {} requests in {elapsed:?}",
        total.completed
    );
    let n = usize::try_from(total.completed).unwrap();
    eprintln!("load: {n} requests in {elapsed:?} ({:.0}/s)", total.rate());

    let mut ids_by_side = Vec::new();
    for envoy in [&mesh.server, &mesh.client] {
        let lines = wait_lines(envoy, n, Duration::from_secs(20));
        let mut ids = BTreeSet::new();
        for line in &lines {
            let m = object(line);
            assert_eq!(m.len(), 10, "{line}");
            assert_eq!(
                (
                    &m["level"],
                    &m["source"],
                    &m["destination"],
                    &m["responseCode"]
                ),
                (
                    &json!("warn"),
                    &json!("productpage"),
                    &json!("ratings"),
                    &json!(200)
                )
            );
            let t = parse_time_us(m["time"].as_str().unwrap()).unwrap();
            assert!(t >= start_us - 1 && t <= end_us, "{line}");
            ids.insert(m["requestId"].as_str().unwrap().to_string());
        }
        assert_eq!(ids.len(), n, "{}: every request logged once", envoy.name());
        ids_by_side.push(ids);
    }
    assert_eq!(
        ids_by_side[0], ids_by_side[1],
        "both sidecars logged the same requests"
    );
    eprintln!(
        "lines: {n} on each sidecar, checked after {:?}",
        started.elapsed()
    );
}

// ---- the istio preset against Envoy's own JSON access log -----------------------------------

/// Istio's default JSON access log format (`accessLogEncoding: JSON`), written by Envoy.
fn envoy_json_log(path: &std::path::Path) -> Value {
    json!({
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": path.to_string_lossy(),
            "log_format": { "json_format": {
                "start_time": "%START_TIME%",
                "method": "%REQ(:METHOD)%",
                "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
                "protocol": "%PROTOCOL%",
                "response_code": "%RESPONSE_CODE%",
                "response_flags": "%RESPONSE_FLAGS%",
                "response_code_details": "%RESPONSE_CODE_DETAILS%",
                "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
                "bytes_received": "%BYTES_RECEIVED%",
                "bytes_sent": "%BYTES_SENT%",
                "duration": "%DURATION%",
                "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
                "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
                "user_agent": "%REQ(USER-AGENT)%",
                "request_id": "%REQ(X-REQUEST-ID)%",
                "authority": "%REQ(:AUTHORITY)%",
                "upstream_host": "%UPSTREAM_HOST%",
                "upstream_cluster": "%UPSTREAM_CLUSTER%",
                "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",
                "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
                "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
                "requested_server_name": "%REQUESTED_SERVER_NAME%",
                "route_name": "%ROUTE_NAME%",
                "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
            } },
        },
    })
}

fn read_json_lines(path: &std::path::Path) -> Vec<Map<String, Value>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(object).collect()
}

/// Compares our `istio` preset line with Envoy's line for the same request, field by field,
/// under exactly the rules docs/access-logs.md lists. Returns the differences.
/// How far the native module's own stream clock may lag Envoy's: Envoy 1.40's dynamic-module
/// ABI returns neither `request.time` nor `request.duration`, so the module starts its clock
/// when Envoy creates the filter, after the request headers were read (docs/native.md).
const NATIVE_CLOCK_MS: i64 = 5;

/// The native build's `start_time` (microseconds) is at or after Envoy's (milliseconds,
/// truncated), by less than [`NATIVE_CLOCK_MS`].
fn native_start_time(ours: &str, envoys: &str) -> bool {
    let theirs = envoys
        .strip_suffix('Z')
        .map(|t| format!("{t}000Z"))
        .and_then(|t| parse_time_us(&t));
    match (parse_time_us(ours), theirs) {
        (Some(m), Some(t)) => (t..t + NATIVE_CLOCK_MS * 1000).contains(&m),
        _ => false,
    }
}

fn compare_istio(ours: &Map<String, Value>, envoy: &Map<String, Value>) -> Vec<String> {
    let native = meshstats_integration::build() == meshstats_integration::Build::Native;
    let mut diffs = Vec::new();
    let fields: BTreeSet<&String> = envoy.keys().collect();
    let mut our_vars: BTreeSet<&String> = ours.keys().collect();
    for k in ["level", "time", "instance"] {
        our_vars.remove(&k.to_string());
    }
    if our_vars != fields {
        diffs.push(format!("fields: ours {our_vars:?}, Envoy's {fields:?}"));
    }
    for (k, theirs) in envoy {
        let mine = ours.get(k).unwrap_or(&Value::Null);
        let same = match k.as_str() {
            // Envoy's %START_TIME% has milliseconds; ours microseconds (truncated): the
            // same instant to the millisecond.
            "start_time" => match (mine.as_str(), theirs.as_str()) {
                (Some(m), Some(t)) if native => native_start_time(m, t),
                (Some(m), Some(t)) => {
                    m.len() == 27 && t.len() == 24 && m[..23] == t[..23] && t.ends_with('Z')
                }
                _ => false,
            },
            "duration" if native => match (mine.as_i64(), theirs.as_i64()) {
                (Some(m), Some(t)) => (t - NATIVE_CLOCK_MS..=t).contains(&m),
                _ => false,
            },
            // Envoy's %UPSTREAM_TRANSPORT_FAILURE_REASON% writes spaces as `_`; ours is the
            // attribute as Envoy holds it.
            "upstream_transport_failure_reason" => match (mine.as_str(), theirs.as_str()) {
                (Some(m), Some(t)) => m.replace(' ', "_") == t,
                _ => mine == theirs,
            },
            _ => mine == theirs,
        };
        if !same {
            diffs.push(format!("{k}: ours {mine}, Envoy's {theirs}"));
        }
    }
    diffs
}

#[test]
fn istio_preset_matches_envoys_own_json_access_log() {
    let app = Backend::start();
    let config = example_config("istio-access-log.json");
    let dir = std::env::temp_dir().join(format!("meshstats-access-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (client_file, server_file) = (dir.join("client.json.log"), dir.join("server.json.log"));
    let (cf, sf) = (client_file.clone(), server_file.clone());
    let mesh = Bookinfo::start_with(
        app.addr(),
        |c| Sidecar {
            extra_access_logs: vec![envoy_json_log(&cf)],
            ..c.config(&config)
        },
        |s| Sidecar {
            extra_access_logs: vec![envoy_json_log(&sf)],
            ..s.config(&config)
        },
    )
    .unwrap();
    // A variety of requests: plain, with user agent and X-Forwarded-For, a POST with a body,
    // an app error, a query string.
    let mut sent = 0;
    Requests::get(mesh.entry, "/ratings/7").send(2);
    Requests::get(mesh.entry, "/ratings/7")
        .headers(&[
            ("user-agent", "curl/8.5.0"),
            ("x-forwarded-for", "10.1.2.3"),
        ])
        .send(1);
    Requests::get(mesh.entry, "/ratings/7")
        .headers(&[("x-backend-status", "503")])
        .status(503)
        .send(1);
    sent += 4;
    let r = http_request(
        "POST",
        mesh.entry,
        "/ratings/7?x=1&y=%20",
        &[("host", HOST), ("content-type", "application/json")],
        r#"{"stars": 5}"#,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    sent += 1;

    // A server sidecar whose app is down: Envoy answers 503 itself (response flag UF).
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let down_file = dir.join("down.json.log");
    let down = Sidecar::new(
        "ratings-down",
        meshstats_cli::Direction::Inbound,
        dead,
        workload_metadata("ratings", "v1"),
    );
    let (down, down_entry) = Sidecar {
        extra_access_logs: vec![envoy_json_log(&down_file)],
        ..down.config(&config)
    }
    .start()
    .unwrap();
    Requests::get(down_entry, "/ratings/7").status(503).send(2);

    let mut compared = 0;
    for (envoy, file, n) in [
        (&mesh.server, &server_file, sent),
        (&mesh.client, &client_file, sent),
        (&down, &down_file, 2),
    ] {
        let ours = wait_lines(envoy, n, Duration::from_secs(10));
        let theirs = read_json_lines(file);
        assert_eq!(theirs.len(), n, "{}: Envoy's lines", envoy.name());
        let theirs: BTreeMap<String, &Map<String, Value>> = theirs
            .iter()
            .map(|m| (m["request_id"].as_str().unwrap().to_string(), m))
            .collect();
        assert_eq!(theirs.len(), n, "request ids are unique");
        for line in &ours {
            assert_line_order(line);
            let m = object(line);
            assert_eq!(
                (&m["level"], &m["instance"]),
                (&json!("info"), &json!("istio")),
                "{line}"
            );
            let id = m["request_id"]
                .as_str()
                .unwrap_or_else(|| panic!("no request_id: {line}"));
            let envoys = theirs
                .get(id)
                .unwrap_or_else(|| panic!("{}: Envoy logged no request {id}", envoy.name()));
            let diffs = compare_istio(&m, envoys);
            assert!(
                diffs.is_empty(),
                "{} request {id}:\n  {}\nours:   {line}\nEnvoy's: {}",
                envoy.name(),
                diffs.join("\n  "),
                Value::Object((*envoys).clone())
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 2 * sent + 2);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- the fallback: entries in Envoy's own log -----------------------------------------------

#[test]
fn proxy_log_delivery_lines_parse_with_the_documented_regex() {
    let app = Backend::start();
    let mut config: Value = serde_json::from_str(&example_config("new-log.json")).unwrap();
    config["log_delivery"] = json!("proxy_log");
    let config = config.to_string();
    // Istio's root ids on one side, none on the other: the regex handles both prefixes.
    let mesh = Bookinfo::start_with(
        app.addr(),
        |c| Sidecar {
            root_id: "stats_outbound".into(),
            ..c.config(&config)
        },
        |s| s.config(&config),
    )
    .unwrap();
    let start = now_us();
    Requests::get(mesh.entry, "/ratings/7").send(4);
    let end = now_us();
    // Envoy's prefix: plugin name, root id (when not empty), VM id. The native module's lines
    // are Envoy's `dynamic_modules` logger's, with no such prefix (docs/native.md).
    let native = meshstats_integration::build() == meshstats_integration::Build::Native;
    let (re, component) = if native {
        (NATIVE_PROXY_LOG_REGEX, "][info][dynamic_modules] [")
    } else {
        (PROXY_LOG_REGEX, "][info][wasm] [")
    };
    let re = regex::Regex::new(re).unwrap();
    let prefixes = if native {
        ["] {", "] {"]
    } else {
        [
            "wasm log meshstats meshstats: {",
            "wasm log meshstats stats_outbound meshstats: {",
        ]
    };
    for (envoy, prefix) in [(&mesh.server, prefixes[0]), (&mesh.client, prefixes[1])] {
        let deadline = Instant::now() + Duration::from_secs(10);
        let matching = |log: &str| {
            log.lines()
                .filter(|l| re.is_match(l))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        while matching(&envoy.log()).len() < 4 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        let lines = matching(&envoy.log());
        assert_eq!(lines.len(), 4, "{}:\n{}", envoy.name(), lines.join("\n"));
        for line in &lines {
            assert!(line.contains(component), "logged at info: {line}");
            assert!(line.contains(prefix), "{line}");
            let entry = &re.captures(line).unwrap()["entry"];
            check_newlog_line(entry, (start, end), 200);
        }
        assert!(
            envoy.stdout().is_empty(),
            "{}: nothing on stdout in proxy_log mode",
            envoy.name()
        );
    }
}

/// The documented regex on the shapes of lines it must and must not match, including
/// Istio's own Envoy log format (`%Y-%m-%dT%T.%fZ\t%l\tenvoy %n %g:%#\t%v\tthread=%t`).
#[test]
fn proxy_log_regex_on_known_line_shapes() {
    let re = regex::Regex::new(PROXY_LOG_REGEX).unwrap();
    let entry = r#"{"level":"warn","time":"2018-11-14T01:46:26.528539Z","instance":"newlog.logentry.istio-system","user":"unknown"}"#;
    for line in [
        // Envoy's default format: plugin name, root id (when not empty), VM id.
        format!("[2026-11-22 00:42:18.791][30081][info][wasm] [source/extensions/common/wasm/context.cc:1151] wasm log meshstats meshstats: {entry}"),
        format!("[2026-11-22 00:42:18.791][30081][info][wasm] [source/extensions/common/wasm/context.cc:1151] wasm log meshstats stats_outbound meshstats: {entry}"),
        format!("[2026-11-22 00:42:18.791][30081][info][wasm] [source/extensions/common/wasm/context.cc:1151] wasm log meshstats: {entry}"),
        format!("2026-11-22T00:34:48.296123Z\tinfo\tenvoy wasm external/envoy/source/extensions/common/wasm/context.cc:1157\twasm log stats_outbound stats_outbound: {entry}\tthread=20"),
    ] {
        let caps = re.captures(&line).unwrap_or_else(|| panic!("no match: {line}"));
        assert_eq!(&caps["entry"], entry, "{line}");
    }
    for line in [
        "[2026-11-22 00:34:48.296][31868][error][wasm] [source/extensions/common/wasm/context.cc:1157] wasm log meshstats: meshstats: invalid meshstats config at `logs[0]`: {oops}",
        "[2026-11-22 00:34:48.296][31868][info][main] [source/server/server.cc:467] wasm: {\"not\": \"an entry\"}",
    ] {
        assert!(!re.is_match(line), "matched: {line}");
    }
}
