//! A certificate authority and the two bookinfo workloads' SPIFFE certificates, made at run
//! time as PEM files, for mTLS between sidecars (`Sidecar::downstream_tls`/`upstream_tls`).

use meshstats_cli::render::envoy::TlsFiles;
use std::path::{Path, PathBuf};

/// The client workload's identity, as Istio would issue it.
pub const PRODUCTPAGE_ID: &str = "spiffe://cluster.local/ns/default/sa/productpage";
/// The server workload's identity.
pub const RATINGS_ID: &str = "spiffe://cluster.local/ns/default/sa/ratings";

/// Certificate files: the client sidecar presents `client`, the server sidecar `server`;
/// both trust the same CA.
pub struct Pki {
    pub client: TlsFiles,
    pub server: TlsFiles,
}

/// Writes a fresh CA and both workloads' certificates into `dir`.
pub fn bookinfo_pki(dir: &Path) -> Result<Pki, String> {
    workload_pki(
        dir,
        ("productpage", PRODUCTPAGE_ID),
        ("ratings", RATINGS_ID),
    )
}

/// A fresh CA and certificates for a `(file name, SPIFFE id)` client and server, in `dir`.
pub fn workload_pki(dir: &Path, client: (&str, &str), server: (&str, &str)) -> Result<Pki, String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let e = |e: rcgen::Error| e.to_string();
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let write = |name: &str, text: &str| -> Result<PathBuf, String> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "meshstats test CA");
    let ca_key = KeyPair::generate().map_err(e)?;
    let ca = ca_params.self_signed(&ca_key).map_err(e)?;
    let ca_path = write("ca.pem", &ca.pem())?;
    let workload = |name: &str, id: &str| -> Result<TlsFiles, String> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
        params.subject_alt_names = vec![SanType::URI(id.try_into().map_err(e)?)];
        let key = KeyPair::generate().map_err(e)?;
        let cert = params.signed_by(&key, &ca, &ca_key).map_err(e)?;
        Ok(TlsFiles {
            cert: write(&format!("{name}.pem"), &cert.pem())?,
            key: write(&format!("{name}-key.pem"), &key.serialize_pem())?,
            ca: ca_path.clone(),
        })
    };
    Ok(Pki {
        client: workload(client.0, client.1)?,
        server: workload(server.0, server.1)?,
    })
}
