//! Istio manifests that deploy the filter (docs/deploying.md), one module per resource kind:
//! `WasmPlugin` (Istio ≥ 1.12's way), `EnvoyFilter` (any Istio, the filter's file already on
//! the proxy), the `Telemetry` resource and mesh config that print the filter's access log
//! entries, and the proxy configuration (pod annotations, `bootstrapOverride` ConfigMap) that
//! carries every label and histogram bucket into the proxy's bootstrap (Istio builds the
//! bootstrap itself; `meshstats render stats-config` is its plain-Envoy equivalent).
//! `resource` holds what every resource shares, `documents` prints them.
//!
//! Every function returns JSON values; [`to_yaml`] and [`to_json`] print them.

mod bootstrap_override;
mod documents;
mod envoy_filter;
mod mesh_config;
mod native;
mod proxy_config;
mod resource;
mod telemetry;
mod wasm_plugin;

pub use bootstrap_override::{
    bootstrap_override, bootstrap_override_fragment, BOOTSTRAP_OVERRIDE_KEY,
};
pub use documents::{to_json, to_yaml, to_yaml_text};
pub use envoy_filter::{
    default_remote_cluster, envoy_filter, http_wasm_filter, network_wasm_filter, plugin_config,
    EnvoyFilterOptions, WasmCode, ENVOY_FILTER_API_VERSION, HTTP_CONTEXTS, HTTP_VM_ID,
    TCP_CONTEXTS, TCP_VM_ID,
};
pub use mesh_config::mesh_config;
pub use native::{
    native_bootstrap_override, native_proxy_annotations, native_proxy_config,
    native_proxy_config_patch, ModuleVolume, NATIVE_VOLUME_NAME, USER_VOLUME_ANNOTATION,
    USER_VOLUME_MOUNT_ANNOTATION,
};
pub use proxy_config::{
    buckets, extra_stat_tags, histogram_bucket_prefix, istio_builtin_tags, proxy_annotations,
    proxy_config, proxy_config_patch, Buckets, BOOTSTRAP_OVERRIDE_ANNOTATION,
    HISTOGRAM_BUCKETS_ANNOTATION, PROXY_CONFIG_ANNOTATION, WASM_STAT_PREFIX,
};
pub use resource::{Scope, TargetRef};
pub use telemetry::{access_log_provider, telemetry, TelemetryOptions, TELEMETRY_API_VERSION};
pub use wasm_plugin::{
    plugin_config_object, wasm_plugins, WasmPluginOptions, WASM_PLUGIN_API_VERSION,
};
