//! `meshstats package`: writes the filter's Wasm OCI image and prints its digests.

use crate::input::{read_wasm, InputError};
use crate::output::Output;
use crate::render::package::{self, image, Image};
use clap::Args;
use std::fmt::Write as _;
use std::path::PathBuf;

/// `meshstats package`.
#[derive(Debug, Clone, Args)]
pub struct PackageArgs {
    /// The filter module.
    #[arg(long, value_name = "FILE", default_value = "dist/meshstats.wasm")]
    pub wasm: PathBuf,
    /// The OCI image layout tarball to write (`oci-archive:FILE`).
    #[arg(
        long,
        value_name = "FILE.tar",
        default_value = "dist/meshstats-oci.tar"
    )]
    pub output: PathBuf,
    /// The image's name in the layout (`oci-archive:FILE:TAG`).
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    pub tag: String,
}

pub fn package(args: &PackageArgs) -> Result<Output, InputError> {
    let wasm = read_wasm(&args.wasm)?;
    let output_error = |e: std::io::Error| InputError::new(&args.output, e.to_string());
    let image = image(&wasm, &args.tag).map_err(output_error)?;
    let archive = image.archive().map_err(output_error)?;
    if let Some(dir) = args.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| InputError::new(dir, format!("cannot create: {e}")))?;
    }
    std::fs::write(&args.output, &archive)
        .map_err(|e| InputError::new(&args.output, format!("cannot write: {e}")))?;
    Ok(Output::stdout(summary(
        &args.output.display().to_string(),
        &image,
    )))
}

/// What was written and which digest goes where.
fn summary(out: &str, image: &Image) -> String {
    let mut stdout = String::new();
    // Infallible: writing to a String.
    let _ = writeln!(
        stdout,
        "{out}: OCI image layout, Wasm image (compat variant), tag {}",
        image.tag
    );
    let _ = writeln!(
        stdout,
        "manifest    {} ({} bytes): `sha256` of a WasmPlugin pulling this image",
        image.manifest.digest,
        image.manifest.bytes.len()
    );
    let _ = writeln!(
        stdout,
        "layer       {} ({} bytes): {}",
        image.layer.digest,
        image.layer.bytes.len(),
        package::PLUGIN_FILE
    );
    let _ = writeln!(
        stdout,
        "plugin.wasm sha256:{} ({} bytes): `sha256` for http(s):// and file:// urls",
        image.wasm_sha256, image.wasm_size
    );
    let _ = writeln!(stdout, "push:       skopeo copy --preserve-digests oci-archive:{out}:{} docker://REGISTRY/REPOSITORY:{}", image.tag, image.tag);
    stdout
}
