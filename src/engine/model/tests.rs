// SPDX-License-Identifier: MPL-2.0
//! Model loading and validation: refusals of bad model directories, and the
//! VAE round trip on the committed tiny model.

use super::*;
use crate::engine::runtime::{ExecutionProvider, SessionConfig};
use crate::engine::test_support::{model_options, scratch_dir, tiny_model_dir};
use serde_json::Value;

fn tensor(name: &str, dtype: &str, shape: Value) -> Value {
    serde_json::json!({ "name": name, "dtype": dtype, "shape": shape })
}

/// A manifest in the exporter's format whose graph files hold `bytes`.
fn write_model_dir(dir: &Path, bytes: &[u8]) -> Value {
    let mut graphs = serde_json::Map::new();
    for graph in Graph::ALL {
        let file = format!("{}.onnx", graph.key());
        std::fs::write(dir.join(&file), bytes).unwrap();
        let (ins, outs) = graph.contract();
        let io = |names: &[&str]| -> Value {
            names
                .iter()
                .map(|n| {
                    tensor(
                        n,
                        if *n == "timestep" || *n == "fps" {
                            "int64"
                        } else {
                            "float32"
                        },
                        serde_json::json!(["n"]),
                    )
                })
                .collect()
        };
        graphs.insert(
            graph.key().into(),
            serde_json::json!({
                "file": file, "sha256": sha256_file(&dir.join(&file)).unwrap(),
                "inputs": io(ins), "outputs": io(outs)
            }),
        );
    }
    let manifest = serde_json::json!({
        "format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION, "precision": "fp32", "canvas": 128,
        "latent_scale": 0.18215, "unet_config": {}, "vae_config": {}, "scheduler_config": {}, "graphs": graphs
    });
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    manifest
}

fn load_err(dir: &Path) -> String {
    match Model::load(&options(dir, ExecutionProvider::Cpu)) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_directory_and_manifest_are_named() {
    let dir = scratch_dir("model-missing");
    assert!(load_err(&dir.join("nope")).contains("does not exist"));
    assert!(load_err(&dir).contains("no readable manifest.json"));
    std::fs::write(dir.join("manifest.json"), "{ not json").unwrap();
    assert!(load_err(&dir).contains("not valid JSON"));
}

#[test]
fn other_format_or_version_is_refused() {
    let dir = scratch_dir("model-format");
    let mut manifest = write_model_dir(&dir, b"graph");
    manifest["format_version"] = 2.into();
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("version 2") && err.contains(MANIFEST_FORMAT),
        "{err}"
    );
}

#[test]
fn io_names_outside_the_contract_are_refused() {
    let dir = scratch_dir("model-contract");
    let mut manifest = write_model_dir(&dir, b"graph");
    manifest["graphs"]["unet"]["inputs"][0]["name"] = "latents".into();
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("graph `unet`") && err.contains("engine needs"),
        "{err}"
    );
}

#[test]
fn missing_graph_and_hash_mismatch_are_named() {
    let dir = scratch_dir("model-files");
    write_model_dir(&dir, b"graph");
    std::fs::write(dir.join("vae_decoder.onnx"), b"altered").unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("vae_decoder.onnx") && err.contains("sha256"),
        "{err}"
    );
    std::fs::remove_file(dir.join("global_encoder.onnx")).unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("global_encoder graph") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_onnx_is_refused() {
    let dir = scratch_dir("model-corrupt");
    write_model_dir(&dir, b"this is not a protobuf");
    let err = load_err(&dir);
    assert!(
        err.contains("unet.onnx") && err.contains("not a graph ONNX Runtime can load"),
        "{err}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

fn options(dir: &Path, provider: ExecutionProvider) -> ModelOptions {
    ModelOptions {
        model_dir: dir.to_owned(),
        ..model_options(provider)
    }
}

#[test]
fn graph_io_that_differs_from_the_manifest_is_refused() {
    let dir = scratch_dir("model-io");
    copy_dir(&tiny_model_dir(), &dir);
    let path = dir.join("manifest.json");
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    manifest["graphs"]["vae_encoder"]["inputs"][0]["dtype"] = "float16".into();
    std::fs::write(&path, manifest.to_string()).unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("vae_encoder graph's inputs differ from the manifest")
            && err.contains("images"),
        "{err}"
    );
}

#[test]
fn cuda_that_cannot_start_is_an_error_and_auto_says_what_it_got() {
    let dir = tiny_model_dir();
    let auto = Model::load(&options(&dir, ExecutionProvider::Auto)).expect("the tiny model loads");
    if auto.provider_in_use() == "cpu" {
        assert!(
            auto.provider_note().is_some_and(|why| why.contains("CUDA")),
            "{:?}",
            auto.provider_note()
        );
        // No usable CUDA here: asking for it must fail, never fall back.
        let err = Model::load(&options(&dir, ExecutionProvider::Cuda))
            .err()
            .expect("cuda refused")
            .to_string();
        assert!(
            err.contains("CUDA execution provider cannot start"),
            "{err}"
        );
    } else {
        assert_eq!(
            Model::load(&options(&dir, ExecutionProvider::Cuda))
                .unwrap()
                .provider_in_use(),
            "cuda"
        );
    }
}

#[test]
fn the_vae_round_trip_keeps_shapes_and_refuses_wrong_lengths() {
    let model = Model::load(&options(&tiny_model_dir(), ExecutionProvider::Cpu)).unwrap();
    let images: Vec<f32> = (0..2 * 3 * 16 * 24)
        .map(|k| ((k % 17) as f32 / 8.0) - 1.0)
        .collect();
    let latents = model.encode(&images, 2, (16, 24), &Cancel::new()).unwrap();
    assert_eq!(latents.len(), 2 * 4 * 2 * 3);
    let decoded = model.decode(&latents, 2, (2, 3), &Cancel::new()).unwrap();
    assert_eq!(decoded.len(), images.len());
    assert!(decoded.iter().all(|v| v.is_finite()));
    let err = model
        .encode(&images[1..], 2, (16, 24), &Cancel::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("`images` has"), "{err}");
}

#[test]
fn external_data_is_hash_checked_like_the_graphs() {
    let dir = scratch_dir("model-external");
    let mut manifest = write_model_dir(&dir, b"graph");
    std::fs::write(dir.join("unet.onnx.data"), b"weights").unwrap();
    manifest["graphs"]["unet"]["external_data"] = serde_json::json!({
        "file": "unet.onnx.data",
        "sha256": sha256_file(&dir.join("unet.onnx.data")).unwrap(),
    });
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    // The hashes match: loading gets as far as ONNX Runtime, which refuses the fake graph.
    assert!(load_err(&dir).contains("not a graph ONNX Runtime can load"));
    std::fs::write(dir.join("unet.onnx.data"), b"corrupted weights").unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("unet.onnx.data") && err.contains("sha256"),
        "{err}"
    );
    std::fs::remove_file(dir.join("unet.onnx.data")).unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("unet.onnx.data") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn a_verified_hash_is_reused_until_the_file_changes() {
    use crate::engine::manifest::cached_sha256;
    let dir = scratch_dir("model-hash-cache");
    let path = dir.join("weights.bin");
    std::fs::write(&path, b"abc").unwrap();
    let first = cached_sha256(&path).unwrap();
    assert_eq!(first, sha256_file(&path).unwrap());
    // Same size and modification time: the file is not read again (the cache's
    // promise, shown here by content it cannot have seen).
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(&path, b"xyz").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    assert_eq!(cached_sha256(&path).unwrap(), first);
    // Another size: read again.
    std::fs::write(&path, b"abcd").unwrap();
    assert_eq!(cached_sha256(&path).unwrap(), sha256_file(&path).unwrap());
    assert_ne!(cached_sha256(&path).unwrap(), first);
}

#[test]
fn shared_models_are_loaded_once_per_options() {
    let options = model_options(ExecutionProvider::Cpu);
    let first = Model::shared(&options).unwrap();
    let second = Model::shared(&options).unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    let other_threads = ModelOptions {
        session: SessionConfig {
            threads: 1,
            ..options.session
        },
        ..options.clone()
    };
    let third = Model::shared(&other_threads).unwrap();
    assert!(!Arc::ptr_eq(&first, &third));
}
