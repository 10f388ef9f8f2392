//! `meshstats package`: an OCI image layout tarball holding the Wasm image (compat variant),
//! read back with the `tar` crate and with `skopeo`, the tool docs/deploying.md pushes it with.

mod common;

use common::scratch_dir;
use flate2::read::GzDecoder;
use meshstats_cli::render::package::{sha256_hex, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use meshstats_testkit::{stand_in_filter, workspace_root};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `dist/meshstats.wasm` when `make build` made it, else the stand-in filter.
fn wasm(dir: &Path) -> PathBuf {
    let dist = workspace_root().join("dist/meshstats.wasm");
    if dist.is_file() {
        return dist;
    }
    stand_in_filter(dir)
}

fn package(wasm: &Path, output: &Path, tag: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_meshstats"))
        .args(["package", "--wasm"])
        .arg(wasm)
        .arg("--output")
        .arg(output)
        .args(["--tag", tag])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Path → (entry type, mode, mtime, contents), in archive order.
type Entries = Vec<(String, tar::EntryType, u32, u64, Vec<u8>)>;

fn entries(archive: &[u8]) -> Entries {
    let mut out = Vec::new();
    for entry in tar::Archive::new(archive).entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.push((
            entry.path().unwrap().to_string_lossy().into_owned(),
            header.entry_type(),
            header.mode().unwrap(),
            header.mtime().unwrap(),
            data,
        ));
    }
    out
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

struct Layout {
    blobs: BTreeMap<String, Vec<u8>>,
    index: Value,
    manifest_digest: String,
    manifest: Value,
}

fn read_layout(archive: &[u8]) -> Layout {
    let entries = entries(archive);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names[..4],
        ["oci-layout", "index.json", "blobs/", "blobs/sha256/"]
    );
    assert_eq!(names.len(), 7, "config, layer, manifest: {names:?}");
    for (path, kind, mode, mtime, _) in &entries {
        assert_eq!(*mtime, 0, "{path}: fixed mtime");
        let expected = if path.ends_with('/') {
            (tar::EntryType::Directory, 0o755)
        } else {
            (tar::EntryType::Regular, 0o644)
        };
        assert_eq!((*kind, *mode), expected, "{path}");
    }
    let file = |name: &str| entries.iter().find(|e| e.0 == name).unwrap().4.clone();
    assert_eq!(
        json(&file("oci-layout")),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );
    let mut blobs = BTreeMap::new();
    for (path, _, _, _, data) in &entries {
        if let Some(hex) = path.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
            assert_eq!(sha256_hex(data), hex, "a blob is named by its digest");
            blobs.insert(format!("sha256:{hex}"), data.clone());
        }
    }
    let index = json(&file("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0]["mediaType"], MANIFEST_MEDIA_TYPE);
    let manifest_digest = manifests[0]["digest"].as_str().unwrap().to_string();
    let manifest_bytes = &blobs[&manifest_digest];
    assert_eq!(manifests[0]["size"], manifest_bytes.len());
    let manifest = json(manifest_bytes);
    Layout {
        manifest: manifest.clone(),
        blobs,
        index,
        manifest_digest,
    }
}

#[test]
fn the_archive_is_an_oci_layout_with_plugin_wasm_in_one_layer() {
    let dir = scratch_dir("package-tar");
    let wasm = wasm(&dir);
    let module = std::fs::read(&wasm).unwrap();
    let output = dir.join("out/meshstats.tar");
    let stdout = package(&wasm, &output, "v1");
    let archive = std::fs::read(&output).unwrap();
    let layout = read_layout(&archive);
    assert_eq!(
        layout.index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "v1"
    );
    let m = &layout.manifest;
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["mediaType"], MANIFEST_MEDIA_TYPE);
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "the compat variant: one layer");
    assert_eq!(layers[0]["mediaType"], LAYER_MEDIA_TYPE);
    let layer = &layout.blobs[layers[0]["digest"].as_str().unwrap()];
    assert_eq!(layers[0]["size"], layer.len());
    let config = json(&layout.blobs[m["config"]["digest"].as_str().unwrap()]);
    assert_eq!(
        m["config"]["size"],
        layout.blobs[m["config"]["digest"].as_str().unwrap()].len()
    );

    // The layer: a gzipped tar of exactly plugin.wasm, the module unchanged.
    let mut layer_tar = Vec::new();
    GzDecoder::new(layer.as_slice())
        .read_to_end(&mut layer_tar)
        .unwrap();
    assert_eq!(
        config["rootfs"],
        serde_json::json!({"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(&layer_tar))]})
    );
    let files = entries(&layer_tar);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].0, "plugin.wasm");
    assert_eq!(files[0].4, module);

    // What the command reports is what it wrote.
    assert!(
        stdout.contains(&format!("manifest    {}", layout.manifest_digest)),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("sha256:{}", sha256_hex(&module))),
        "{stdout}"
    );

    // Deterministic: the same module gives the same bytes, whatever the tag, the same image.
    let again = dir.join("again.tar");
    package(&wasm, &again, "v1");
    assert_eq!(std::fs::read(&again).unwrap(), archive);
    let other_tag = dir.join("other.tar");
    package(&wasm, &other_tag, "v2");
    assert_eq!(
        read_layout(&std::fs::read(&other_tag).unwrap()).manifest_digest,
        layout.manifest_digest
    );

    // Not a module: refused.
    let bad = common::write(&dir, "bad.wasm", "{}");
    let out = Command::new(env!("CARGO_BIN_EXE_meshstats"))
        .args(["package", "--wasm"])
        .arg(&bad)
        .arg("--output")
        .arg(dir.join("bad.tar"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a WebAssembly module"));
}

fn skopeo() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("skopeo"))
            .find(|p| p.is_file())
    });
    // Missing skopeo is a failure, not a skip: `make setup` installs it.
    found.expect("skopeo not found: run `make setup` (installs it as root) or install skopeo")
}

#[test]
fn skopeo_reads_the_archive() {
    let dir = scratch_dir("package-skopeo");
    let wasm = wasm(&dir);
    let output = dir.join("meshstats.tar");
    package(&wasm, &output, "0.1.0");
    let layout = read_layout(&std::fs::read(&output).unwrap());
    let layer = &layout.manifest["layers"][0];

    let inspect = |target: String, raw: bool| {
        let mut cmd = Command::new(skopeo());
        cmd.arg("inspect");
        if raw {
            cmd.arg("--raw");
        }
        let out = cmd.arg(&target).output().unwrap();
        assert!(
            out.status.success(),
            "skopeo inspect {target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    for target in [
        format!("oci-archive:{}", output.display()),
        format!("oci-archive:{}:0.1.0", output.display()),
    ] {
        let info = json(&inspect(target.clone(), false));
        assert_eq!(info["Digest"], layout.manifest_digest.as_str(), "{target}");
        assert_eq!(info["Layers"], serde_json::json!([layer["digest"]]));
        // Newer skopeo releases also report each layer's size and media type.
        if let Some(data) = info.get("LayersData") {
            assert_eq!(data[0]["Digest"], layer["digest"]);
            assert_eq!(data[0]["Size"], layer["size"]);
            assert_eq!(data[0]["MIMEType"], LAYER_MEDIA_TYPE);
        }
        assert_eq!(info["Os"], "wasip1");
        assert_eq!(info["Architecture"], "wasm");
        // The manifest bytes as a registry would serve them, digest for digest.
        let raw = inspect(target, true);
        assert_eq!(
            format!("sha256:{}", sha256_hex(&raw)),
            layout.manifest_digest
        );
    }

    // A copy, as a push does it: skopeo reads and verifies every blob, and with
    // --preserve-digests refuses to change the manifest (so the digest rendered into a
    // WasmPlugin stays the pulled image's).
    let copy = dir.join("copy");
    let out = Command::new(skopeo())
        .args(["copy", "--quiet", "--preserve-digests"])
        .arg(format!("oci-archive:{}:0.1.0", output.display()))
        .arg(format!("dir:{}", copy.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = std::fs::read(copy.join("manifest.json")).unwrap();
    assert_eq!(
        format!("sha256:{}", sha256_hex(&manifest)),
        layout.manifest_digest
    );
    let layer_hex = layer["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let layer_file = std::fs::read(copy.join(layer_hex)).unwrap();
    assert_eq!(layer["size"], layer_file.len());
    assert_eq!(sha256_hex(&layer_file), layer_hex);
}
