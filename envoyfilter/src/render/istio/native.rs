//! What an Istio sidecar needs to run the native build: the `.so` mounted into `istio-proxy`
//! (Istio's `userVolume` / `userVolumeMount` annotations), the stats matcher keeping the
//! module's series, and its histogram buckets. No `extraStatTags`: the module defines its
//! metrics with label names, so Istio's tag regexes never see them.

use super::bootstrap_override::BOOTSTRAP_OVERRIDE_KEY;
use super::documents::to_yaml_text;
use super::proxy_config::{insert_buckets, PROXY_CONFIG_ANNOTATION};
use super::resource::part_of_labels;
use crate::render::native::{
    native_stats_config, NATIVE_STAT_PREFIX, SEARCH_PATH_ENV, STRIP_PREFIX_RUNTIME_KEY,
};
use meshstats_filter::config::PluginConfig;
use serde_json::{json, Map, Value};
use std::path::Path;

pub const USER_VOLUME_ANNOTATION: &str = "sidecar.istio.io/userVolume";
pub const USER_VOLUME_MOUNT_ANNOTATION: &str = "sidecar.istio.io/userVolumeMount";

/// The pod volume holding `libmeshstats.so`.
pub const NATIVE_VOLUME_NAME: &str = "meshstats-module";

/// Where the volume with the module comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleVolume {
    /// The node's directory of the module (put there by e.g. a DaemonSet or the node image).
    HostPath,
    /// An OCI image whose files are the module (Kubernetes' `image` volume, 1.31+ with the
    /// `ImageVolume` feature).
    Image(String),
}

/// The directory of `module_path`, which the volume is mounted at and Envoy searches.
fn module_dir(module_path: &str) -> String {
    Path::new(module_path)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

/// The `ProxyConfig` fields: the module's series kept whatever the matcher excludes, and the
/// search path in Envoy's environment (Istio's injector turns `proxyMetadata` into container
/// environment variables), so a filter naming the module without its file also finds it.
pub fn native_proxy_config(module_path: &str) -> Value {
    json!({
        "proxyMetadata": { SEARCH_PATH_ENV: module_dir(module_path) },
        "proxyStatsMatcher": { "inclusionPrefixes": [NATIVE_STAT_PREFIX] },
        // Envoy's runtime, as a static layer (`runtimeValues`, Istio 1.19+): series named
        // `istio_*`, not `envoy_dynamicmodulescustom_istio_*`.
        "runtimeValues": { STRIP_PREFIX_RUNTIME_KEY: "true" },
    })
}

/// The pod annotations of the native build, for `spec.template.metadata.annotations`.
pub fn native_proxy_annotations(
    config: &PluginConfig,
    module_path: &str,
    volume: &ModuleVolume,
    bootstrap_config_map: &str,
) -> Map<String, Value> {
    let dir = module_dir(module_path);
    let source = match volume {
        ModuleVolume::HostPath => json!({ "hostPath": { "path": dir, "type": "Directory" } }),
        ModuleVolume::Image(reference) => {
            json!({ "image": { "reference": reference, "pullPolicy": "IfNotPresent" } })
        }
    };
    let mut annotations = Map::new();
    annotations.insert(
        PROXY_CONFIG_ANNOTATION.into(),
        Value::String(to_yaml_text(&native_proxy_config(module_path))),
    );
    annotations.insert(
        USER_VOLUME_ANNOTATION.into(),
        Value::String(json!({ NATIVE_VOLUME_NAME: source }).to_string()),
    );
    annotations.insert(
        USER_VOLUME_MOUNT_ANNOTATION.into(),
        Value::String(
            json!({ NATIVE_VOLUME_NAME: { "mountPath": dir, "readOnly": true } }).to_string(),
        ),
    );
    // Istio matches the key as a prefix of the stat's full name.
    let prefix = NATIVE_STAT_PREFIX.trim_end_matches('.');
    insert_buckets(&mut annotations, config, prefix, bootstrap_config_map);
    annotations
}

/// `render proxy-config --build native`: a strategic merge patch for a pod template owner.
pub fn native_proxy_config_patch(
    config: &PluginConfig,
    module_path: &str,
    volume: &ModuleVolume,
    bootstrap_config_map: &str,
) -> Value {
    json!({ "spec": { "template": { "metadata": {
        "annotations": native_proxy_annotations(config, module_path, volume, bootstrap_config_map),
    }}}})
}

/// `render bootstrap-override --build native`: the native build's per-metric buckets.
pub fn native_bootstrap_override(config: &PluginConfig, name: &str, namespace: &str) -> Value {
    let settings = native_stats_config(config)
        .get("histogram_bucket_settings")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let fragment = json!({ "stats_config": { "histogram_bucket_settings": settings } });
    let text = serde_json::to_string_pretty(&fragment).unwrap_or_default();
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": name, "namespace": namespace, "labels": part_of_labels() },
        "data": { BOOTSTRAP_OVERRIDE_KEY: text + "\n" },
    })
}
