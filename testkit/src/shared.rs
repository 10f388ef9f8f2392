//! The project's shared test material (`../shared` beside the checkout: Istio's CRDs and
//! dashboards, Istio 1.0's Mixer configurations), and what the tests know about it.

use crate::artifacts::workspace_root;
use std::path::PathBuf;

/// `<shared>/<sub>`, where `<shared>` is `$MESHSTATS_SHARED`, else `<workspace>/../shared`
/// (where every checkout has it; a `git worktree` elsewhere sets the variable). Panics if
/// it is missing: tests against this material must fail without it, never skip.
pub fn shared_dir(sub: &str) -> PathBuf {
    let shared = match std::env::var_os("MESHSTATS_SHARED").filter(|v| !v.is_empty()) {
        Some(v) => workspace_root().join(PathBuf::from(v)),
        None => workspace_root().join("../shared"),
    };
    let dir = shared.join(sub);
    assert!(
        dir.is_dir(),
        "no {}: the project's shared/ directory belongs beside the checkout \
         (or set MESHSTATS_SHARED to it)",
        dir.display()
    );
    dir
}

/// The `label_names` of every HTTP metric in the prometheus handler of Istio 1.0's default
/// telemetry (`mixer-configs/istio-1.0-default-telemetry.yaml`), in its order.
pub const MIXER_HTTP_LABELS: [&str; 17] = [
    "reporter",
    "source_app",
    "source_principal",
    "source_workload",
    "source_workload_namespace",
    "source_version",
    "destination_app",
    "destination_principal",
    "destination_workload",
    "destination_workload_namespace",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "request_protocol",
    "response_code",
    "connection_security_policy",
];

/// The `label_names` of both TCP metrics in the same handler: the HTTP ones but
/// `request_protocol` and `response_code`.
pub const MIXER_TCP_LABELS: [&str; 15] = [
    "reporter",
    "source_app",
    "source_principal",
    "source_workload",
    "source_workload_namespace",
    "source_version",
    "destination_app",
    "destination_principal",
    "destination_workload",
    "destination_workload_namespace",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "connection_security_policy",
];
