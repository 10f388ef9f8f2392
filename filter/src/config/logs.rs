//! meshstats' `logs[]` and `log_delivery`: access logs defined like Mixer `logentry`s
//! (compiled by `access_log`).

use serde::Deserialize;

/// meshstats: one access log, as a Mixer `logentry` instance plus its rule's `match`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Required, non-empty.
    pub name: String,
    /// The entry's `instance` field; default `name`.
    pub instance: Option<String>,
    /// A bool expression: log only the requests it holds for. Empty means every request.
    #[serde(rename = "match")]
    pub match_: String,
    /// A string expression mapped to the line's `level`; default `info`.
    pub severity: Option<String>,
    /// A timestamp expression for the line's `time`; default `request.time`.
    pub timestamp: Option<String>,
    /// Field name → expression.
    pub variables: std::collections::BTreeMap<String, String>,
    /// Predefined variables, which `variables` may extend or override.
    pub preset: Option<LogPreset>,
    /// The fraction of matching requests logged, in (0, 1]; default 1.
    pub sampling: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum LogPreset {
    /// The fields of Istio's default JSON access log (`accessLogEncoding: JSON`).
    #[serde(rename = "istio")]
    Istio,
    /// Istio 1.0's default Mixer `accesslog` logentry.
    #[serde(rename = "mixer")]
    Mixer,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum LogDelivery {
    /// All of a request's entries in one filter state value (`wasm.meshstats_log`), which
    /// Envoy's stdout access logger prints with `%FILTER_STATE(wasm.meshstats_log:PLAIN)%`.
    #[default]
    #[serde(rename = "filter_state")]
    FilterState,
    /// One proxy log line per entry (`wasm log <plugin>: <json>`), no access logger needed.
    #[serde(rename = "proxy_log")]
    ProxyLog,
}

#[cfg(test)]
mod tests {
    use crate::config::*;

    #[test]
    fn logs_in_both_spellings() {
        let c = PluginConfig::parse(
            r#"{"logs": [{"name": "newlog", "instance": "newlog.logentry.istio-system", "match": "true",
                          "severity": "'warning'", "timestamp": "request.time", "variables": {"a": "1"},
                          "preset": "mixer", "sampling": 0.25}],
                "logDelivery": "proxy_log"}"#,
        )
        .unwrap();
        assert_eq!(c.log_delivery, LogDelivery::ProxyLog);
        assert_eq!(c.logs[0].preset, Some(LogPreset::Mixer));
        assert_eq!(c.logs[0].sampling, Some(0.25));
        assert_eq!(
            PluginConfig::parse(r#"{"logs": [{"name": "x"}]}"#)
                .unwrap()
                .log_delivery,
            LogDelivery::FilterState
        );
        let e = PluginConfig::parse(r#"{"logs": [{"name": "x", "preset": "envoy"}]}"#).unwrap_err();
        assert_eq!(e.path, "logs[0].preset");
        let e = PluginConfig::parse(r#"{"logs": [{"name": "x", "sample": 1}]}"#).unwrap_err();
        assert_eq!(e.path, "logs[0].sample");
    }
}
