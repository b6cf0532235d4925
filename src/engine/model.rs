// SPDX-License-Identifier: MPL-2.0
//! A validated model directory (DESIGN.md §1) and its four ONNX Runtime
//! sessions. Loading refuses, with a sentence, what `manifest.rs` refuses (a
//! missing directory or manifest, another format or version, a missing or
//! altered graph file), a graph that ONNX Runtime cannot read, and graph
//! inputs/outputs that differ from the manifest. The run functions take and
//! return f32 and convert to and from float16 where the manifest says so.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ort::session::{Session, SessionInputValue};
use ort::value::{Tensor, TensorRef, ValueType};

use super::error::{EngineError, Result};
pub use super::manifest::{
    DType, Graph, GraphSpec, MANIFEST_FORMAT, MANIFEST_VERSION, Manifest, TensorSpec, sha256_file,
};
use super::manifest::{check_graph_files, model_err};
use super::runtime::{self, Provider};
use super::stream::ModelOptions;

/// Compares a session's inputs/outputs with the manifest's declaration.
fn check_session_io(graph: Graph, session: &Session, spec: &GraphSpec) -> Result<()> {
    let sides: [(&str, Vec<(&str, &ValueType)>, &[TensorSpec]); 2] = [
        ("inputs", session.inputs().iter().map(|o| (o.name(), o.dtype())).collect(), &spec.inputs),
        ("outputs", session.outputs().iter().map(|o| (o.name(), o.dtype())).collect(), &spec.outputs),
    ];
    for (what, actual, declared) in sides {
        let mismatch = |detail: String| {
            model_err(format!("the {} graph's {what} differ from the manifest: {detail}", graph.key()))
        };
        if actual.len() != declared.len() {
            let names: Vec<&str> = actual.iter().map(|(n, _)| *n).collect();
            return Err(mismatch(format!("the graph has {names:?}")));
        }
        for want in declared {
            let Some((_, ty)) = actual.iter().find(|(n, _)| *n == want.name) else {
                return Err(mismatch(format!("the graph has no `{}`", want.name)));
            };
            let got_dtype = ty.tensor_type().and_then(DType::of_ort);
            if got_dtype != Some(want.dtype) {
                let got = ty.tensor_type().map_or("a non-tensor".to_owned(), |t| t.to_string());
                return Err(mismatch(format!("`{}` is {got}, the manifest says {}", want.name, want.dtype.name())));
            }
            let dims: &[i64] = ty.tensor_shape().map_or(&[], |s| s);
            let fixed_differs = dims.iter().zip(&want.shape).any(|(g, w)| matches!(w, Some(w) if *g >= 0 && g != w));
            if dims.len() != want.shape.len() || fixed_differs {
                return Err(mismatch(format!(
                    "`{}` has shape {dims:?}, the manifest says {:?}",
                    want.name, want.shape
                )));
            }
        }
    }
    Ok(())
}

/// A borrowed model input.
pub enum Input<'a> {
    F32(&'a [f32]),
    I64(&'a [i64]),
}

/// A validated model directory with its four sessions.
pub struct Model {
    dir: PathBuf,
    manifest: Manifest,
    provider: Provider,
    provider_note: Option<String>,
    sessions: Vec<Mutex<Session>>,
}

impl Model {
    /// Loads and validates a model directory (manifest, graph hashes, graph IO).
    pub fn load(options: &ModelOptions) -> Result<Arc<Model>> {
        let dir = options.model_dir.clone();
        let manifest = Manifest::read(&dir)?;
        check_graph_files(&dir, &manifest)?;
        let mut sessions = Vec::new();
        let mut provider: Option<Provider> = None;
        let mut provider_note = None;
        for graph in Graph::ALL {
            let spec = manifest.graph(graph);
            let opened = runtime::open_session(&dir.join(&spec.file), options.provider, options.device_id)?;
            check_session_io(graph, &opened.session, spec)?;
            // With `auto`, every graph must land on the same provider.
            if let Some(first) = provider.filter(|p| *p != opened.provider) {
                return Err(EngineError::Runtime(format!(
                    "the {} graph started on {} while the others run on {}",
                    graph.key(),
                    opened.provider.name(),
                    first.name()
                )));
            }
            provider = Some(opened.provider);
            provider_note = provider_note.or(opened.fallback_reason);
            sessions.push(Mutex::new(opened.session));
        }
        let provider = provider.unwrap_or(Provider::Cpu);
        Ok(Arc::new(Model { dir, manifest, provider, provider_note, sessions }))
    }

    /// The execution provider the sessions run on: "cpu" or "cuda".
    pub fn provider_in_use(&self) -> &'static str {
        self.provider.name()
    }
    /// With `execution-provider=auto` on the CPU: why CUDA was not used.
    pub fn provider_note(&self) -> Option<&str> {
        self.provider_note.as_deref()
    }
    /// The model's default canvas (manifest `canvas`).
    pub fn canvas(&self) -> u32 {
        self.manifest.canvas
    }
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn latent_scale(&self) -> f32 {
        self.manifest.latent_scale
    }

    /// VAE encoder: images `[n,3,h,w]` in [-1,1] → posterior mean `[n,4,h/8,w/8]` (unscaled).
    pub fn encode(&self, images: &[f32], n: usize, h: usize, w: usize) -> Result<Vec<f32>> {
        check_len("images", images.len(), n * 3 * h * w)?;
        let out = self.run(Graph::VaeEncoder, &[("images", &[n, 3, h, w], Input::F32(images))])?;
        expect_len("latent_mean", out, n * 4 * (h / 8) * (w / 8))
    }

    /// VAE decoder: latents `[n,4,h,w]` (unscaled) → images `[n,3,8h,8w]` (unclamped).
    pub fn decode(&self, latents: &[f32], n: usize, h: usize, w: usize) -> Result<Vec<f32>> {
        check_len("latents", latents.len(), n * 4 * h * w)?;
        let out = self.run(Graph::VaeDecoder, &[("latents", &[n, 4, h, w], Input::F32(latents))])?;
        expect_len("images", out, n * 3 * (h * 8) * (w * 8))
    }

    /// Global image encoder: 16 scaled global latents `[16,4,h,w]` → context `[1,T,D]`.
    /// Returns the context and its `(T, D)`.
    pub fn global_context(&self, latents16: &[f32], h: usize, w: usize) -> Result<(Vec<f32>, usize, usize)> {
        check_len("global_latents", latents16.len(), 16 * 4 * h * w)?;
        let mut session = self.session(Graph::GlobalEncoder)?;
        let inputs = self.inputs(Graph::GlobalEncoder, &[("global_latents", &[16, 4, h, w], Input::F32(latents16))])?;
        let outputs = session.run(inputs).map_err(|e| inference_err(Graph::GlobalEncoder, e))?;
        let (shape, data) = extract_f32(Graph::GlobalEncoder, &outputs["context"])?;
        match shape[..] {
            [1, t, d] => Ok((data, t, d)),
            _ => Err(EngineError::Inference(format!("the global encoder returned shape {shape:?}, not [1,T,D]"))),
        }
    }

    /// One U-Net call on a batch of `batch` items: `sample [batch,9,16,h,w]`, one
    /// timestep and fps for every item, `context [batch,T,D]`. Writes
    /// `noise_pred [batch,4,16,h,w]` into `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn unet(
        &self,
        sample: &[f32],
        batch: usize,
        h: usize,
        w: usize,
        timestep: i64,
        fps: i64,
        context: &[f32],
        tokens: usize,
        dim: usize,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        check_len("sample", sample.len(), batch * 9 * 16 * h * w)?;
        check_len("context", context.len(), batch * tokens * dim)?;
        let timesteps = vec![timestep; batch];
        let fps_values = vec![fps; batch];
        let mut session = self.session(Graph::Unet)?;
        let inputs = self.inputs(
            Graph::Unet,
            &[
                ("sample", &[batch, 9, 16, h, w], Input::F32(sample)),
                ("timestep", &[batch], Input::I64(&timesteps)),
                ("fps", &[batch], Input::I64(&fps_values)),
                ("context", &[batch, tokens, dim], Input::F32(context)),
            ],
        )?;
        let outputs = session.run(inputs).map_err(|e| inference_err(Graph::Unet, e))?;
        let value = &outputs["noise_pred"];
        let want = batch * 4 * 16 * h * w;
        if let Ok((_, data)) = value.try_extract_tensor::<f32>() {
            check_out_len("noise_pred", data.len(), want)?;
            out.clear();
            out.extend_from_slice(data);
        } else {
            let (_, data) = value.try_extract_tensor::<half::f16>().map_err(|e| inference_err(Graph::Unet, e))?;
            check_out_len("noise_pred", data.len(), want)?;
            out.clear();
            out.extend(data.iter().map(|v| v.to_f32()));
        }
        Ok(())
    }

    /// Runs a graph with one float output and returns it.
    fn run(&self, graph: Graph, inputs: &[(&'static str, &[usize], Input<'_>)]) -> Result<Vec<f32>> {
        let mut session = self.session(graph)?;
        let values = self.inputs(graph, inputs)?;
        let outputs = session.run(values).map_err(|e| inference_err(graph, e))?;
        let name = graph.contract().1[0];
        Ok(extract_f32(graph, &outputs[name])?.1)
    }

    fn session(&self, graph: Graph) -> Result<std::sync::MutexGuard<'_, Session>> {
        self.sessions[graph.index()].lock().map_err(|_| {
            EngineError::Inference(format!("the {} session was poisoned by an earlier failure", graph.key()))
        })
    }

    /// Builds named session inputs, converting to each input's manifest dtype
    /// (borrowing where no conversion is needed).
    fn inputs<'v>(
        &self,
        graph: Graph,
        inputs: &[(&'static str, &[usize], Input<'v>)],
    ) -> Result<Vec<(Cow<'static, str>, SessionInputValue<'v>)>> {
        let spec = self.manifest.graph(graph);
        let mut out = Vec::with_capacity(inputs.len());
        for (name, shape, data) in inputs {
            let dtype = spec.inputs.iter().find(|t| t.name == *name).map(|t| t.dtype).unwrap_or(DType::F32);
            let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            let value: SessionInputValue<'v> = match (data, dtype) {
                (Input::F32(v), DType::F32) => TensorRef::from_array_view((shape, *v)).map(Into::into),
                (Input::F32(v), DType::F16) => {
                    Tensor::from_array((shape, v.iter().map(|&x| half::f16::from_f32(x)).collect::<Vec<_>>()))
                        .map(Into::into)
                }
                (Input::I64(v), DType::I64) => TensorRef::from_array_view((shape, *v)).map(Into::into),
                (Input::I64(v), DType::F32) => {
                    Tensor::from_array((shape, v.iter().map(|&x| x as f32).collect::<Vec<_>>())).map(Into::into)
                }
                (Input::I64(v), DType::F16) => {
                    Tensor::from_array((shape, v.iter().map(|&x| half::f16::from_f32(x as f32)).collect::<Vec<_>>()))
                        .map(Into::into)
                }
                (Input::F32(_), DType::I64) => {
                    return Err(model_err(format!(
                        "the {} input `{name}` is int64 where the engine sends floats",
                        graph.key()
                    )));
                }
            }
            .map_err(|e| inference_err(graph, e))?;
            out.push((Cow::Borrowed(*name), value));
        }
        Ok(out)
    }
}

fn extract_f32(graph: Graph, value: &ort::value::DynValue) -> Result<(Vec<usize>, Vec<f32>)> {
    if let Ok((shape, data)) = value.try_extract_tensor::<f32>() {
        return Ok((shape.iter().map(|&d| d as usize).collect(), data.to_vec()));
    }
    let (shape, data) = value.try_extract_tensor::<half::f16>().map_err(|e| inference_err(graph, e))?;
    Ok((shape.iter().map(|&d| d as usize).collect(), data.iter().map(|v| v.to_f32()).collect()))
}

fn inference_err(graph: Graph, e: impl std::fmt::Display) -> EngineError {
    EngineError::Inference(format!("the {} graph failed: {e}", graph.key()))
}

fn check_len(name: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(EngineError::InvalidInput(format!("`{name}` has {got} values where its shape needs {want}")))
    }
}

fn check_out_len(name: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(EngineError::Inference(format!("the graph returned {got} values for `{name}`, expected {want}")))
    }
}

fn expect_len(name: &str, data: Vec<f32>, want: usize) -> Result<Vec<f32>> {
    check_out_len(name, data.len(), want)?;
    Ok(data)
}

/// The committed tiny random model (`make tiny-model`), or `M3DDM_TEST_MODEL`.
#[cfg(test)]
pub(crate) fn tiny_model_dir() -> PathBuf {
    std::env::var_os("M3DDM_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/models/tiny")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stream::ExecutionProvider;
    use serde_json::Value;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("m3ddm-model-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

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
                            if *n == "timestep" || *n == "fps" { "int64" } else { "float32" },
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
        let options = ModelOptions { model_dir: dir.to_owned(), provider: ExecutionProvider::Cpu, device_id: 0 };
        match Model::load(&options) {
            Ok(_) => panic!("{} loaded", dir.display()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn missing_directory_and_manifest_are_named() {
        let dir = temp_dir("missing");
        assert!(load_err(&dir.join("nope")).contains("does not exist"));
        assert!(load_err(&dir).contains("no readable manifest.json"));
        std::fs::write(dir.join("manifest.json"), "{ not json").unwrap();
        assert!(load_err(&dir).contains("not valid JSON"));
    }

    #[test]
    fn other_format_or_version_is_refused() {
        let dir = temp_dir("format");
        let mut manifest = write_model_dir(&dir, b"graph");
        manifest["format_version"] = 2.into();
        std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
        let err = load_err(&dir);
        assert!(err.contains("version 2") && err.contains(MANIFEST_FORMAT), "{err}");
    }

    #[test]
    fn io_names_outside_the_contract_are_refused() {
        let dir = temp_dir("contract");
        let mut manifest = write_model_dir(&dir, b"graph");
        manifest["graphs"]["unet"]["inputs"][0]["name"] = "latents".into();
        std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
        let err = load_err(&dir);
        assert!(err.contains("graph `unet`") && err.contains("engine needs"), "{err}");
    }

    #[test]
    fn missing_graph_and_hash_mismatch_are_named() {
        let dir = temp_dir("files");
        write_model_dir(&dir, b"graph");
        std::fs::write(dir.join("vae_decoder.onnx"), b"altered").unwrap();
        let err = load_err(&dir);
        assert!(err.contains("vae_decoder.onnx") && err.contains("sha256"), "{err}");
        std::fs::remove_file(dir.join("global_encoder.onnx")).unwrap();
        let err = load_err(&dir);
        assert!(err.contains("global_encoder graph") && err.contains("missing"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_onnx_is_refused() {
        let dir = temp_dir("corrupt");
        write_model_dir(&dir, b"this is not a protobuf");
        let err = load_err(&dir);
        assert!(err.contains("unet.onnx") && err.contains("not a graph ONNX Runtime can load"), "{err}");
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
        ModelOptions { model_dir: dir.to_owned(), provider, device_id: 0 }
    }

    #[test]
    fn graph_io_that_differs_from_the_manifest_is_refused() {
        let dir = temp_dir("io");
        copy_dir(&tiny_model_dir(), &dir);
        let path = dir.join("manifest.json");
        let mut manifest: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        manifest["graphs"]["vae_encoder"]["inputs"][0]["dtype"] = "float16".into();
        std::fs::write(&path, manifest.to_string()).unwrap();
        let err = load_err(&dir);
        assert!(err.contains("vae_encoder graph's inputs differ from the manifest") && err.contains("images"), "{err}");
    }

    #[test]
    fn cuda_that_cannot_start_is_an_error_and_auto_says_what_it_got() {
        let dir = tiny_model_dir();
        let auto = Model::load(&options(&dir, ExecutionProvider::Auto)).expect("the tiny model loads");
        if auto.provider_in_use() == "cpu" {
            assert!(auto.provider_note().is_some_and(|why| why.contains("CUDA")), "{:?}", auto.provider_note());
            // No usable CUDA here: asking for it must fail, never fall back.
            let err = Model::load(&options(&dir, ExecutionProvider::Cuda)).err().expect("cuda refused").to_string();
            assert!(err.contains("CUDA execution provider cannot start"), "{err}");
        } else {
            assert_eq!(Model::load(&options(&dir, ExecutionProvider::Cuda)).unwrap().provider_in_use(), "cuda");
        }
    }

    #[test]
    fn the_vae_round_trip_keeps_shapes_and_refuses_wrong_lengths() {
        let model = Model::load(&options(&tiny_model_dir(), ExecutionProvider::Cpu)).unwrap();
        let images: Vec<f32> = (0..2 * 3 * 16 * 24).map(|k| ((k % 17) as f32 / 8.0) - 1.0).collect();
        let latents = model.encode(&images, 2, 16, 24).unwrap();
        assert_eq!(latents.len(), 2 * 4 * 2 * 3);
        let decoded = model.decode(&latents, 2, 2, 3).unwrap();
        assert_eq!(decoded.len(), images.len());
        assert!(decoded.iter().all(|v| v.is_finite()));
        let err = model.encode(&images[1..], 2, 16, 24).unwrap_err().to_string();
        assert!(err.contains("`images` has"), "{err}");
    }
}
