//! What happens to traffic when the filter's VM fails, with the failure policy `meshstats
//! render envoy` renders. The shipped filter cannot be made to trap, so a test-only module
//! (WAT, below; never built into `dist/`) stands in for it in the otherwise unchanged rendered
//! bootstrap: it counts requests in a metric of its own and traps on request.

use meshstats_cli::render::envoy::FAILURE_POLICY;
use meshstats_cli::Direction;
use meshstats_integration::mesh::{workload_metadata, Sidecar};
use meshstats_integration::{free_port, http_get, runs_under, Backend, Build, Envoy};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Counts each request in `trap_fixture_requests` (per VM, so a reloaded VM is seen counting
/// again) unless it carries `x-trap-headers`, which traps in `proxy_on_request_headers`
/// (before the response); `x-trap-log` traps in `proxy_on_log` (after it), where the real
/// filter does most of its work.
const TRAPPING_MODULE: &str = r#"(module
  (import "env" "proxy_get_header_map_value"
    (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric" (func $define_metric (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $increment_metric (param i32 i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "x-trap-headers")
  (data (i32.const 130) "x-trap-log")
  (data (i32.const 150) "trap_fixture_requests")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (drop (call $define_metric (i32.const 0) (i32.const 150) (i32.const 21) (i32.const 208)))
    (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func $has_request_header (param $name i32) (param $len i32) (result i32)
    (i32.eqz (call $get_header (i32.const 0) (local.get $name) (local.get $len)
      (i32.const 200) (i32.const 204))))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (call $has_request_header (i32.const 100) (i32.const 14)) (then unreachable))
    (drop (call $increment_metric (i32.load (i32.const 208)) (i64.const 1)))
    (i32.const 0))
  (func (export "proxy_on_log") (param i32)
    (if (call $has_request_header (i32.const 130) (i32.const 10)) (then unreachable)))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))"#;

/// Envoy reloads a failed VM only when its last load is longer ago than the backoff (1 s
/// base, jittered up to 1.5 s); waiting this long makes the next reload certain.
const PAST_BACKOFF: Duration = Duration::from_millis(2000);

struct Fixture {
    envoy: Envoy,
    listen: SocketAddr,
    loaded: Instant,
    _app: Backend,
    dir: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Fixture {
    /// A server sidecar as `render envoy` writes it, with the trapping module as its code
    /// and `policy` (`None`: the rendered one) as its failure policy.
    fn start(name: &str, policy: Option<&str>) -> Fixture {
        let app = Backend::start();
        let dir = std::env::temp_dir().join(format!("meshstats-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let wasm = dir.join("trapping.wasm");
        std::fs::write(&wasm, wat::parse_str(TRAPPING_MODULE).unwrap()).unwrap();
        let sidecar = Sidecar::new(
            name,
            Direction::Inbound,
            app.addr(),
            workload_metadata("ratings", "v1"),
        );
        let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut bootstrap = sidecar.bootstrap(listen, admin);
        let config = bootstrap
            .pointer_mut(
                "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters/0/typed_config/config",
            )
            .unwrap();
        assert_eq!(config["failure_policy"], FAILURE_POLICY);
        config["vm_config"]["code"]["local"]["filename"] = Value::from(wasm.to_string_lossy());
        if let Some(policy) = policy {
            config["failure_policy"] = Value::from(policy);
        }
        let envoy = Envoy::start(name, &bootstrap, admin).unwrap();
        Fixture {
            envoy,
            listen,
            loaded: Instant::now(),
            _app: app,
            dir,
        }
    }

    fn status(&self, headers: &[(&str, &str)]) -> u16 {
        http_get(self.listen, "/ratings/0", headers)
            .unwrap_or_else(|e| panic!("{e}"))
            .status
    }

    fn statuses(&self, n: usize) -> Vec<u16> {
        (0..n).map(|_| self.status(&[])).collect()
    }

    /// The value of each of Envoy's stats named here (`/stats` text, before tag extraction).
    fn stats(&self, names: &[&str]) -> Vec<(String, u64)> {
        let text = self.envoy.stats_text().unwrap();
        names
            .iter()
            .map(|name| {
                let value = text
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or_else(|| panic!("no stat {name} in:\n{text}"));
                (name.to_string(), value)
            })
            .collect()
    }

    fn wait_past_backoff(&mut self) {
        let since = self.loaded.elapsed();
        if since < PAST_BACKOFF {
            std::thread::sleep(PAST_BACKOFF - since);
        }
    }

    fn traps_logged(&self) -> usize {
        self.envoy
            .log()
            .lines()
            .filter(|l| l.contains("failed: Uncaught RuntimeError: unreachable"))
            .count()
    }
}

const RELOAD_STATS: [&str; 4] = [
    "wasm.meshstats.vm_reload_success",
    "wasm.meshstats.vm_reload_backoff",
    "wasm.meshstats.vm_reload_failure",
    "wasmcustom.trap_fixture_requests",
];

fn expect(values: [u64; 4]) -> Vec<(String, u64)> {
    RELOAD_STATS
        .iter()
        .zip(values)
        .map(|(n, v)| (n.to_string(), v))
        .collect()
}

/// The rendered policy, `FAIL_RELOAD`: a trap costs at most the request it happened in, the
/// next request gets a fresh VM that observes traffic again, and Envoy counts the reload.
#[test]
fn a_trap_fails_at_most_its_own_request_and_the_vm_comes_back() {
    if !runs_under(Build::Wasm, "Wasm VM traps and Envoy's reload policy") {
        return;
    }
    assert_eq!(FAILURE_POLICY, "FAIL_RELOAD");
    let mut f = Fixture::start("trap-reload", None);
    assert_eq!(f.statuses(3), [200; 3]);
    assert_eq!(f.stats(&RELOAD_STATS), expect([0, 0, 0, 3]));

    // A trap after the response (in proxy_on_log) costs no request at all.
    f.wait_past_backoff();
    assert_eq!(f.status(&[("x-trap-log", "1")]), 200);
    assert_eq!(f.statuses(5), [200; 5]);
    // The trapping request was counted before the trap, the next 5 by the reloaded VM.
    assert_eq!(f.stats(&RELOAD_STATS), expect([1, 0, 0, 9]));
    f.loaded = Instant::now();

    // A trap before the response fails that request (Envoy's local 503), and only it.
    f.wait_past_backoff();
    assert_eq!(f.status(&[("x-trap-headers", "1")]), 503);
    assert_eq!(f.statuses(5), [200; 5]);
    assert_eq!(f.stats(&RELOAD_STATS), expect([2, 0, 0, 14]));

    // The cost of the backoff: a VM that fails again within it stays failed until it is
    // over, and requests meanwhile fail too (one here), counted as vm_reload_backoff.
    assert_eq!(f.status(&[("x-trap-headers", "1")]), 503);
    assert_eq!(f.status(&[]), 503);
    assert_eq!(f.stats(&RELOAD_STATS), expect([2, 1, 0, 14]));
    std::thread::sleep(PAST_BACKOFF);
    assert_eq!(f.statuses(2), [200; 2]);
    assert_eq!(f.stats(&RELOAD_STATS), expect([3, 1, 0, 16]));
    assert_eq!(f.traps_logged(), 3, "{}", f.envoy.log());
}

/// Why not `FAIL_OPEN`: Envoy fails the trapping request all the same (its per-stream fail-open
/// comes from the deprecated `fail_open` flag only), then leaves the VM failed: requests flow
/// unobserved until Envoy restarts, and no stat says so.
#[test]
fn fail_open_would_fail_the_request_too_and_never_reload() {
    if !runs_under(Build::Wasm, "Wasm VM traps and Envoy's reload policy") {
        return;
    }
    let mut f = Fixture::start("trap-open", Some("FAIL_OPEN"));
    assert_eq!(f.statuses(3), [200; 3]);
    f.wait_past_backoff();
    assert_eq!(f.status(&[("x-trap-headers", "1")]), 503);
    assert_eq!(f.statuses(5), [200; 5]);
    std::thread::sleep(PAST_BACKOFF);
    assert_eq!(f.statuses(5), [200; 5]);
    assert_eq!(f.stats(&RELOAD_STATS), expect([0, 0, 0, 3]));
    assert_eq!(f.traps_logged(), 1, "{}", f.envoy.log());
}
