//! Test harness for running meshstats inside real Envoy processes.
//!
//! - [`Envoy`]: a running Envoy (killed on drop; its log is printed if the thread panics).
//! - [`Backend`]: a tiny HTTP/1.1 app server that records what it was sent.
//! - [`Scrape`]: a parsed `/stats/prometheus` page.
//! - [`http_get`] / [`http_request`]: one plain-HTTP request.
//! - [`Requests`]: checked test traffic to the ratings app, through a mesh.
//! - [`prometheus::Prometheus`]: a real Prometheus scraping Envoys, for dashboard queries.
//! - [`tcp_echo::TcpEcho`]: a TCP echo server, for the TCP metrics tests.
//! - [`bench`]: the setups and load tool of `meshstats-bench` (`make bench`).
//! - [`lds`]: sidecars whose listener comes from a watched file (file-based LDS), and pushes.
//! - [`soak`]: many requests through two sidecars and the exact accounting of them.
//! - [`demo`]: the `make run` mesh (bookinfo with a gateway, Prometheus, the Kiali-style
//!   graph and per-edge table), shared with `tests/demo_mesh.rs`.
//! - [`mesh`]: Istio-shaped sidecars (rendered by `meshstats_cli`) and the two-sidecar
//!   [`mesh::Bookinfo`] setup.
//! - [`envoy_bin`], [`wasm_path`], [`meshstats_bin`]: the artifacts under test, from
//!   `ENVOY_BIN`, `MESHSTATS_WASM`, `MESHSTATS_BIN` or the places `make build` puts them
//!   (the lookup is `meshstats_testkit`'s, shared with the CLI's tests);
//!   [`example_config`]: a configuration from `envoyfilter/examples/`.
//! - [`build`]: which build every sidecar runs (`MESHSTATS_BUILD=wasm|native`, default
//!   wasm), with [`native_module_path`] / [`native_module_dir`] (`MESHSTATS_NATIVE`, else
//!   `dist/libmeshstats.so`) beside [`wasm_path`]; [`runs_under`] skips a test about one
//!   build only, saying why.

mod backend;
pub mod bench;
pub mod demo;
mod envoy;
mod http;
pub mod lds;
pub mod load;
pub mod mesh;
mod paths;
pub mod pki;
pub mod prometheus;
mod requests;
mod scrape;
pub mod soak;
pub mod tcp_echo;

pub use backend::{Backend, BackendConfig, RecordedRequest};
pub use envoy::Envoy;
pub use http::{http_get, http_request, Response};
pub use meshstats_cli::Build;
pub use paths::{
    build, envoy_bin, example_config, free_port, meshstats_bin, native_module_dir,
    native_module_path, runs_under, scratch_dir, wasm_path, workspace_root,
};
pub use requests::Requests;
pub use scrape::{Histogram, Kind, Scrape, Series};
