//! SPIFFE identities (`spiffe://<trust domain>/ns/<namespace>/sa/<service account>`), as
//! Istio writes them into workload certificates' URI SANs.
//!
//! Istio's stats filter takes the peer's namespace from its SPIFFE id when there is one and
//! from its metadata otherwise (`istio_stats.cc`, "fallback from using the namespace from SAN
//! if available to using peer metadata"): the certificate is authenticated, metadata is not.

/// The namespace of a SPIFFE id, `None` for anything else (an empty namespace included).
pub fn spiffe_namespace(id: &str) -> Option<&str> {
    istio_path(id).map(|(ns, _)| ns)
}

/// The service account of an Istio SPIFFE id, `None` when it has none.
pub fn spiffe_service_account(id: &str) -> Option<&str> {
    istio_path(id).and_then(|(_, sa)| sa)
}

/// `(namespace, service account)` of `spiffe://<td>/ns/<namespace>/sa/<account>`.
fn istio_path(id: &str) -> Option<(&str, Option<&str>)> {
    let path = id.strip_prefix("spiffe://")?;
    // The trust domain cannot contain `/`; the path follows it.
    let (_, path) = path.split_once('/')?;
    let mut segments = path.split('/');
    // Istio's layout only: `ns/<namespace>/sa/<account>`; other SPIFFE paths say nothing.
    match (segments.next(), segments.next(), segments.next()) {
        (Some("ns"), Some(ns), Some("sa")) if !ns.is_empty() => {
            Some((ns, segments.next().filter(|sa| !sa.is_empty())))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{spiffe_namespace, spiffe_service_account};

    #[test]
    fn namespace_comes_from_istio_spiffe_ids_only() {
        assert_eq!(
            spiffe_namespace("spiffe://cluster.local/ns/default/sa/productpage"),
            Some("default")
        );
        assert_eq!(
            spiffe_namespace("spiffe://td.example/ns/prod-1/sa/ratings"),
            Some("prod-1")
        );
        assert_eq!(spiffe_namespace("spiffe://cluster.local/ns//sa/x"), None);
        assert_eq!(spiffe_namespace("spiffe://cluster.local/ns/default"), None);
        assert_eq!(spiffe_namespace("spiffe://cluster.local/workload/x"), None);
        assert_eq!(
            spiffe_namespace("https://cluster.local/ns/default/sa/x"),
            None
        );
        assert_eq!(spiffe_namespace(""), None);
        assert_eq!(spiffe_namespace("unknown"), None);
    }

    #[test]
    fn service_account_comes_from_istio_spiffe_ids_only() {
        assert_eq!(
            spiffe_service_account("spiffe://cluster.local/ns/default/sa/productpage"),
            Some("productpage")
        );
        assert_eq!(
            spiffe_service_account("spiffe://cluster.local/ns/default/sa/"),
            None
        );
        assert_eq!(
            spiffe_service_account("spiffe://cluster.local/ns/default/sa"),
            None
        );
        assert_eq!(
            spiffe_service_account("spiffe://cluster.local/ns//sa/x"),
            None
        );
        assert_eq!(
            spiffe_service_account("spiffe://cluster.local/workload/x/sa/y"),
            None
        );
    }
}
