//! What Mixer's prometheus adapter did to names and histogram buckets, in our shapes.

use crate::mixer::resources::field;
use serde_json::{json, Value};

/// The Prometheus client's default buckets, which Mixer's handler used for a distribution
/// without `buckets`.
const PROMETHEUS_DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Mixer's bucket definition in our shapes. Mixer's handler made `num_finite_buckets + 1`
/// bounds for linear and exponential buckets (the Prometheus client's count), ours make
/// `num_finite_buckets`: the count is raised by one so the bounds are the same. `scale`
/// multiplies the bounds (1000 for seconds → milliseconds).
pub fn buckets(def: Option<&Value>, scale: f64) -> Result<Value, String> {
    let num = |v: &Value, names: &[&str]| field(v, names).and_then(Value::as_f64);
    let s = |x: f64| (x * scale * 1e9).round() / 1e9;
    let Some(def) = def else {
        let bounds: Vec<f64> = PROMETHEUS_DEFAULT_BUCKETS.iter().map(|b| s(*b)).collect();
        return Ok(json!({"explicit_buckets": {"bounds": bounds}}));
    };
    if let Some(e) = field(def, &["explicit_buckets", "explicitBuckets"]) {
        let bounds: Vec<f64> = field(e, &["bounds"])
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_f64).map(s).collect())
            .unwrap_or_default();
        return Ok(json!({"explicit_buckets": {"bounds": bounds}}));
    }
    let count = |v: &Value| {
        num(v, &["num_finite_buckets", "numFiniteBuckets"])
            .map(|n| n as u64 + 1)
            .unwrap_or(1)
    };
    if let Some(l) = field(def, &["linear_buckets", "linearBuckets"]) {
        let (width, offset) = (
            num(l, &["width"]).unwrap_or(0.0),
            num(l, &["offset"]).unwrap_or(0.0),
        );
        return Ok(
            json!({"linear_buckets": {"num_finite_buckets": count(l), "width": s(width), "offset": s(offset)}}),
        );
    }
    if let Some(x) = field(def, &["exponential_buckets", "exponentialBuckets"]) {
        let (growth, base) = (
            num(x, &["growth_factor", "growthFactor"]).unwrap_or(0.0),
            num(x, &["scale"]).unwrap_or(0.0),
        );
        return Ok(
            json!({"exponential_buckets": {"num_finite_buckets": count(x), "growth_factor": growth, "scale": s(base)}}),
        );
    }
    Err(format!(
        "{def} is not explicit_buckets, linear_buckets or exponential_buckets"
    ))
}

/// Mixer's prometheus adapter's `safeName`: `/`, `.` and spaces become `_`, `-` is removed.
pub fn safe_name(name: &str) -> String {
    name.trim_start_matches('/')
        .chars()
        .filter(|c| *c != '-')
        .map(|c| if matches!(c, '/' | '.' | ' ') { '_' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_match_mixers_bounds() {
        let b = buckets(Some(&json!({"exponentialBuckets": {"numFiniteBuckets": 8, "scale": 1, "growthFactor": 10}})), 1.0).unwrap();
        assert_eq!(
            b,
            json!({"exponential_buckets": {"num_finite_buckets": 9, "growth_factor": 10.0, "scale": 1.0}})
        );
        let b = buckets(
            Some(&json!({"explicit_buckets": {"bounds": [0.005, 0.01, 0.025, 2.5]}})),
            1000.0,
        )
        .unwrap();
        assert_eq!(
            b,
            json!({"explicit_buckets": {"bounds": [5.0, 10.0, 25.0, 2500.0]}})
        );
        let b = buckets(
            Some(&json!({"linear_buckets": {"num_finite_buckets": 3, "width": 0.5}})),
            1000.0,
        )
        .unwrap();
        assert_eq!(
            b,
            json!({"linear_buckets": {"num_finite_buckets": 4, "width": 500.0, "offset": 0.0}})
        );
        assert_eq!(
            buckets(None, 1.0).unwrap()["explicit_buckets"]["bounds"][0],
            json!(0.005)
        );
        assert!(buckets(Some(&json!({"log": {}})), 1.0).is_err());
    }

    #[test]
    fn safe_names() {
        assert_eq!(safe_name("/a.b c-d"), "a_b_cd");
    }
}
