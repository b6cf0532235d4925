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

/// The engine's shape of a tensor as the exporter writes it (numbers, and names for free dims).
fn contract_shape(graph: Graph, name: &str) -> Value {
    let dims = graph.contract_shape(name).expect("a contract tensor");
    dims.split(',')
        .map(|d| {
            d.parse::<i64>()
                .map_or_else(|_| Value::from(d), Value::from)
        })
        .collect()
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
                        contract_shape(graph, n),
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

/// A copy of the tiny model in a scratch folder, and its manifest.
fn tiny_copy(tag: &str) -> (PathBuf, Value) {
    let dir = scratch_dir(tag);
    copy_dir(&tiny_model_dir(), &dir);
    let manifest =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    (dir, manifest)
}

fn write_manifest(dir: &Path, manifest: &Value) {
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
}

#[test]
fn a_manifest_with_shapes_the_engine_cannot_use_is_refused() {
    let (dir, mut manifest) = tiny_copy("model-shapes");
    manifest["graphs"]["unet"]["inputs"][0]["shape"] =
        serde_json::json!(["batch", 8, 16, "h", "w"]);
    write_manifest(&dir, &manifest);
    let err = load_err(&dir);
    eprintln!("{err}");
    assert!(
        err.contains("graph `unet`")
            && err.contains("`sample` has shape [?,8,16,?,?] where the engine needs [B,9,16,h,w]"),
        "{err}"
    );
    // Of the right rank and channels, but not what the graph has: ONNX Runtime's view decides.
    let (dir, mut manifest) = tiny_copy("model-shapes-graph");
    manifest["graphs"]["unet"]["inputs"][3]["shape"] = serde_json::json!(["batch", "tokens", 256]);
    write_manifest(&dir, &manifest);
    let err = load_err(&dir);
    eprintln!("{err}");
    assert!(
        err.contains("the unet graph's inputs differ from the manifest")
            && err.contains("`context` has shape [?,?,320], the manifest says [?,?,256]"),
        "{err}"
    );
}

#[test]
fn the_graph_of_another_model_part_is_named() {
    let (dir, mut manifest) = tiny_copy("model-wrong-graph");
    std::fs::copy(dir.join("vae_decoder.onnx"), dir.join("unet.onnx")).unwrap();
    manifest["graphs"]["unet"]["sha256"] = sha256_file(&dir.join("unet.onnx")).unwrap().into();
    write_manifest(&dir, &manifest);
    let err = load_err(&dir);
    eprintln!("{err}");
    assert!(
        err.contains(
            "unet.onnx has the inputs of the VAE decoder graph ([\"latents\"]), not those of the U-Net"
        ),
        "{err}"
    );
}

#[test]
fn an_fp16_model_is_refused_on_the_cpu_provider() {
    let (dir, mut manifest) = tiny_copy("model-fp16");
    manifest["precision"] = "fp16".into();
    write_manifest(&dir, &manifest);
    let err = load_err(&dir);
    eprintln!("{err}");
    assert!(
        err.contains(&format!(
            "{} holds fp16 graphs, which the CPU execution provider cannot run",
            dir.display()
        )) && err.contains("--precision fp32"),
        "{err}"
    );
    // `auto` without a usable CUDA lands on the CPU: refused too, saying why.
    match Model::load(&options(&dir, ExecutionProvider::Auto)) {
        Ok(model) => assert_eq!(model.provider_in_use(), "cuda"),
        Err(err) => {
            let err = err.to_string();
            assert!(err.contains("cannot run (CUDA was not used:"), "{err}");
        }
    }
}

#[test]
fn a_loaded_model_outlives_its_directory_and_the_cache_sees_a_new_one() {
    let (dir, mut manifest) = tiny_copy("model-replaced");
    let options = options(&dir, ExecutionProvider::Cpu);
    let first = Model::shared(&options).unwrap();
    assert!(Arc::ptr_eq(&first, &Model::shared(&options).unwrap()));
    // Removed: the loaded sessions keep working; the next load says what is missing.
    std::fs::remove_dir_all(&dir).unwrap();
    let images = vec![0.25f32; 3 * 16 * 16];
    assert_eq!(
        first
            .encode(&images, 1, (16, 16), &Cancel::new())
            .unwrap()
            .len(),
        4 * 2 * 2
    );
    let err = Model::shared(&options).err().expect("refused").to_string();
    assert!(err.contains("does not exist"), "{err}");
    // Back with another manifest (another canvas): a new model, not the cached one.
    copy_dir(&tiny_model_dir(), &dir);
    manifest["canvas"] = 64.into();
    write_manifest(&dir, &manifest);
    let second = Model::shared(&options).unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    assert_eq!((first.canvas(), second.canvas()), (128, 64));
    // A graph replaced by another file of the same size and modification time
    // is read again (a new inode), and refused for its hash.
    let path = dir.join("vae_decoder.onnx");
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let replacement = dir.join("replacement.tmp");
    std::fs::write(&replacement, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&replacement)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    std::fs::rename(&replacement, &path).unwrap();
    let err = Model::shared(&options).err().expect("refused").to_string();
    assert!(
        err.contains("vae_decoder.onnx does not match its manifest"),
        "{err}"
    );
}
