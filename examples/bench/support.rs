// SPDX-License-Identifier: MPL-2.0
//! What the bench sections share: the project's paths, the exported golden
//! tiny model, the statistics of repeated timings, and synthetic frames.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gstm3ddm::engine::RgbImage;

pub type BenchResult = Result<(), String>;

pub fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn golden() -> PathBuf {
    std::env::var_os("M3DDM_GOLDEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| project().join("../shared/golden"))
}

pub fn venv_python() -> PathBuf {
    project().join(".venv/bin/python")
}

/// The golden `tiny-model-a` exported by the project's exporter into
/// `.cache/bench/tiny-model-a` (again when the exporter changed since).
pub fn exported_tiny_model_a() -> Result<PathBuf, String> {
    let out = project().join(".cache/bench/tiny-model-a");
    let exporter = project().join("models/m3ddm_export");
    let newest_source = newest_mtime(&exporter);
    let exported = std::fs::metadata(out.join("manifest.json"))
        .and_then(|m| m.modified())
        .ok();
    if exported.is_some_and(|e| newest_source.is_none_or(|s| s <= e)) {
        return Ok(out);
    }
    let source = golden().join("tiny-model-a");
    eprintln!("exporting {} ...", source.display());
    let status = Command::new(venv_python())
        .env("PYTHONPATH", project().join("models"))
        .args(["-m", "m3ddm_export", "--force", "--unet"])
        .arg(source.join("unet"))
        .arg("--vae")
        .arg(source.join("vae"))
        .arg("--out")
        .arg(&out)
        .status()
        .map_err(|e| format!("cannot run the exporter ({e}); run `make venv`"))?;
    if !status.success() {
        return Err(format!("exporting {} failed", source.display()));
    }
    Ok(out)
}

fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "py"))
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max()
}

/// Minimum and median of some timings.
pub fn min_median(times: &[Duration]) -> (Duration, Duration) {
    let mut sorted = times.to_vec();
    sorted.sort();
    (sorted[0], sorted[sorted.len() / 2])
}

pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A moving gradient, so that frames differ.
pub fn synthetic_frame(width: u32, height: u32, k: u32) -> RgbImage {
    let mut data = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            data.extend_from_slice(&[
                ((x + 3 * k) % 256) as u8,
                ((y + k) % 256) as u8,
                ((x ^ y) % 256) as u8,
            ]);
        }
    }
    RgbImage {
        width,
        height,
        data,
    }
}
