//! `meshstats package`: the filter as a Wasm OCI image in an OCI image layout tarball
//! (what `skopeo` and `oras` read as `oci-archive:FILE`).
//!
//! The image is the "compat" variant of the Wasm image spec Istio pulls (Istio's
//! `WasmPlugin` with an `oci://` url): a standard OCI image whose single layer, of media
//! type `application/vnd.oci.image.layer.v1.tar+gzip`, holds one file, `plugin.wasm`, as
//! `FROM scratch` + `ADD plugin.wasm ./` would build it. Everything is deterministic (fixed
//! mtimes, owners and modes, gzip without a timestamp, JSON with sorted keys), so the same
//! `.wasm` always gives the same digests: the manifest digest can be computed before the
//! push (`render wasmplugin --wasm`) and checked by Istio after the pull (`sha256`).

use flate2::{Compression, GzBuilder};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::Write;

pub const PLUGIN_FILE: &str = "plugin.wasm";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The annotation that names an image in an image layout (`oci-archive:FILE:TAG`).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// Every file's mtime: 1970-01-01T00:00:00Z.
const MTIME: u64 = 0;

/// A blob of the image: its bytes, `sha256:<hex>` digest and media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub media_type: &'static str,
    pub bytes: Vec<u8>,
    pub digest: String,
}

impl Blob {
    fn new(media_type: &'static str, bytes: Vec<u8>) -> Blob {
        let digest = format!("sha256:{}", sha256_hex(&bytes));
        Blob {
            media_type,
            bytes,
            digest,
        }
    }

    /// The OCI descriptor pointing at this blob.
    pub fn descriptor(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len() })
    }

    fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }
}

/// The image, ready to be written as an image layout tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The gzipped tar holding `plugin.wasm`.
    pub layer: Blob,
    /// `sha256:` of the layer's uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: String,
    pub config: Blob,
    /// Its digest is the image's: `oci://REPO@sha256:…`, a `WasmPlugin`'s `sha256`.
    pub manifest: Blob,
    /// The `.wasm` module's own sha256 (hex), for `http(s)://` and `file://` urls.
    pub wasm_sha256: String,
    pub wasm_size: usize,
    pub tag: String,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A Wasm binary module starts with `\0asm`.
pub fn is_wasm(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm")
}

fn tar_header(path: &str, size: usize, directory: bool) -> std::io::Result<tar::Header> {
    let mut header = tar::Header::new_ustar();
    header.set_path(path)?;
    header.set_size(size as u64);
    header.set_mode(if directory { 0o755 } else { 0o644 });
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(MTIME);
    header.set_entry_type(if directory {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    header.set_cksum();
    Ok(header)
}

/// A tar of `entries` (path, `None` for a directory), in that order, with fixed metadata.
fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        match data {
            Some(data) => builder.append(&tar_header(path, data.len(), false)?, *data)?,
            None => builder.append(&tar_header(path, 0, true)?, std::io::empty())?,
        }
    }
    builder.into_inner()
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    // No file name, mtime 0, "unknown" OS: nothing in the header varies.
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::best());
    encoder.write_all(bytes)?;
    encoder.finish()
}

fn json_bytes(value: &Value) -> Vec<u8> {
    // serde_json's maps are sorted: the same value always gives the same bytes.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Builds the image of `wasm`, named `tag` in the layout's index.
pub fn image(wasm: &[u8], tag: &str) -> std::io::Result<Image> {
    let layer_tar = tar_of(&[(PLUGIN_FILE, Some(wasm))])?;
    let diff_id = format!("sha256:{}", sha256_hex(&layer_tar));
    let layer = Blob::new(LAYER_MEDIA_TYPE, gzip(&layer_tar)?);
    // Go's names for the WASI preview 1 target, as `GOOS=wasip1 GOARCH=wasm` images use.
    let config = Blob::new(
        CONFIG_MEDIA_TYPE,
        json_bytes(&json!({
            "architecture": "wasm",
            "os": "wasip1",
            "config": {},
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        })),
    );
    let manifest = Blob::new(
        MANIFEST_MEDIA_TYPE,
        json_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
        })),
    );
    Ok(Image {
        layer,
        diff_id,
        config,
        manifest,
        wasm_sha256: sha256_hex(wasm),
        wasm_size: wasm.len(),
        tag: tag.to_string(),
    })
}

impl Image {
    /// The layout's `index.json`: the one manifest, named by the tag.
    pub fn index(&self) -> Value {
        let mut descriptor = self.manifest.descriptor();
        descriptor["annotations"] = json!({ REF_NAME_ANNOTATION: self.tag });
        json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [descriptor],
        })
    }

    /// The OCI image layout as one tar: `oci-layout`, `index.json`, `blobs/sha256/…`.
    pub fn archive(&self) -> std::io::Result<Vec<u8>> {
        let layout = json_bytes(&json!({ "imageLayoutVersion": "1.0.0" }));
        let index = json_bytes(&self.index());
        let blobs: Vec<(String, &[u8])> = [&self.config, &self.layer, &self.manifest]
            .iter()
            .map(|b| (format!("blobs/sha256/{}", b.hex()), b.bytes.as_slice()))
            .collect();
        let mut entries: Vec<(&str, Option<&[u8]>)> = vec![
            ("oci-layout", Some(&layout)),
            ("index.json", Some(&index)),
            ("blobs/", None),
            ("blobs/sha256/", None),
        ];
        entries.extend(blobs.iter().map(|(p, b)| (p.as_str(), Some(*b))));
        tar_of(&entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_wasm_same_digests() {
        let wasm = b"\0asm\x01\0\0\0";
        let a = image(wasm, "1").unwrap();
        let b = image(wasm, "2").unwrap();
        assert_eq!(a.manifest, b.manifest, "the tag is not part of the image");
        assert_eq!(
            a.archive().unwrap(),
            image(wasm, "1").unwrap().archive().unwrap()
        );
        let c = image(b"\0asm\x01\0\0\0\0", "1").unwrap();
        assert_ne!(a.manifest.digest, c.manifest.digest);
        assert_eq!(a.wasm_sha256, sha256_hex(wasm));
        assert!(is_wasm(wasm) && !is_wasm(b"{}"));
    }
}
