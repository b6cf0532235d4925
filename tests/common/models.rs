// SPDX-License-Identifier: MPL-2.0
//! Altered copies of the tiny model for the fault and bad-input tests: a copy
//! in a temporary folder, its manifest edited, or changed by one of the
//! Python fixtures of `tests/fixtures/` (run with the project's venv).

use std::path::{Path, PathBuf};

use super::tiny_model;

/// A copy of the tiny model in a fresh temporary folder named after `tag`
/// (unique among the tests of a binary).
pub fn model_copy(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("m3ddm-model-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(tiny_model()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

/// Changes the manifest of the model directory `dir`.
pub fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("manifest.json");
    let mut manifest = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(&path, manifest.to_string()).unwrap();
}

/// Runs `tests/fixtures/<script>` on the model directory `dir` with the venv's Python.
pub fn run_fixture(script: &str, dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    let output = std::process::Command::new(&python)
        .arg(root.join("tests/fixtures").join(script))
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("{} (make venv) cannot run: {e}", python.display()));
    assert!(
        output.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A copy of the tiny model whose `unet.onnx` is its VAE decoder (manifest re-hashed).
pub fn model_with_vae_as_unet(tag: &str) -> PathBuf {
    let dir = model_copy(tag);
    std::fs::copy(dir.join("vae_decoder.onnx"), dir.join("unet.onnx")).unwrap();
    edit_manifest(&dir, |manifest| {
        manifest["graphs"]["unet"]["sha256"] = manifest["graphs"]["vae_decoder"]["sha256"].clone();
    });
    dir
}
