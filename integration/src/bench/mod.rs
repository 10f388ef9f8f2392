//! What `meshstats-bench` (`make bench`) measures, apart from the orchestration in its binary:
//! the setups and their Envoy bootstraps ([`setup`]), wrk as the load generator ([`wrk`]),
//! and medians over rounds ([`median`]).

pub mod setup;
pub mod wrk;

/// The median of `values` (the mean of the middle two for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// `a / b`, NaN when `b` is not positive (a setup that did not run).
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_even_and_empty_lists() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[5.0, f64::NAN]), 5.0);
        assert!(median(&[]).is_nan());
        assert!(ratio(1.0, 0.0).is_nan());
        assert_eq!(ratio(3.0, 4.0), 0.75);
    }
}
