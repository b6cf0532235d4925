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

/// One side of a graph: its name, the session's (name, type) pairs, the manifest's tensors.
type IoSide<'a> = (&'a str, Vec<(&'a str, &'a ValueType)>, &'a [TensorSpec]);

/// Compares a session's inputs/outputs with the manifest's declaration.
fn check_session_io(graph: Graph, session: &Session, spec: &GraphSpec) -> Result<()> {
    let sides: [IoSide; 2] = [
        (
            "inputs",
            session
                .inputs()
                .iter()
                .map(|o| (o.name(), o.dtype()))
                .collect(),
            &spec.inputs,
        ),
        (
            "outputs",
            session
                .outputs()
                .iter()
                .map(|o| (o.name(), o.dtype()))
                .collect(),
            &spec.outputs,
        ),
    ];
    for (what, actual, declared) in sides {
        let mismatch = |detail: String| {
            model_err(format!(
                "the {} graph's {what} differ from the manifest: {detail}",
                graph.key()
            ))
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
                let got = ty
                    .tensor_type()
                    .map_or("a non-tensor".to_owned(), |t| t.to_string());
                return Err(mismatch(format!(
                    "`{}` is {got}, the manifest says {}",
                    want.name,
                    want.dtype.name()
                )));
            }
            let dims: &[i64] = ty.tensor_shape().map_or(&[], |s| s);
            let fixed_differs = dims
                .iter()
                .zip(&want.shape)
                .any(|(g, w)| matches!(w, Some(w) if *g >= 0 && g != w));
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
            let opened =
                runtime::open_session(&dir.join(&spec.file), options.provider, options.device_id)?;
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
        Ok(Arc::new(Model {
            dir,
            manifest,
            provider,
            provider_note,
            sessions,
        }))
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
        let out = self.run(
            Graph::VaeEncoder,
            &[("images", &[n, 3, h, w], Input::F32(images))],
        )?;
        expect_len("latent_mean", out, n * 4 * (h / 8) * (w / 8))
    }

    /// VAE decoder: latents `[n,4,h,w]` (unscaled) → images `[n,3,8h,8w]` (unclamped).
    pub fn decode(&self, latents: &[f32], n: usize, h: usize, w: usize) -> Result<Vec<f32>> {
        check_len("latents", latents.len(), n * 4 * h * w)?;
        let out = self.run(
            Graph::VaeDecoder,
            &[("latents", &[n, 4, h, w], Input::F32(latents))],
        )?;
        expect_len("images", out, n * 3 * (h * 8) * (w * 8))
    }

    /// Global image encoder: 16 scaled global latents `[16,4,h,w]` → context `[1,T,D]`.
    /// Returns the context and its `(T, D)`.
    pub fn global_context(
        &self,
        latents16: &[f32],
        h: usize,
        w: usize,
    ) -> Result<(Vec<f32>, usize, usize)> {
        check_len("global_latents", latents16.len(), 16 * 4 * h * w)?;
        let mut session = self.session(Graph::GlobalEncoder)?;
        let inputs = self.inputs(
            Graph::GlobalEncoder,
            &[("global_latents", &[16, 4, h, w], Input::F32(latents16))],
        )?;
        let outputs = session
            .run(inputs)
            .map_err(|e| inference_err(Graph::GlobalEncoder, e))?;
        let (shape, data) = extract_f32(Graph::GlobalEncoder, &outputs["context"])?;
        match shape[..] {
            [1, t, d] => Ok((data, t, d)),
            _ => Err(EngineError::Inference(format!(
                "the global encoder returned shape {shape:?}, not [1,T,D]"
            ))),
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
        let outputs = session
            .run(inputs)
            .map_err(|e| inference_err(Graph::Unet, e))?;
        let value = &outputs["noise_pred"];
        let want = batch * 4 * 16 * h * w;
        if let Ok((_, data)) = value.try_extract_tensor::<f32>() {
            check_out_len("noise_pred", data.len(), want)?;
            out.clear();
            out.extend_from_slice(data);
        } else {
            let (_, data) = value
                .try_extract_tensor::<half::f16>()
                .map_err(|e| inference_err(Graph::Unet, e))?;
            check_out_len("noise_pred", data.len(), want)?;
            out.clear();
            out.extend(data.iter().map(|v| v.to_f32()));
        }
        Ok(())
    }

    /// Runs a graph with one float output and returns it.
    fn run(
        &self,
        graph: Graph,
        inputs: &[(&'static str, &[usize], Input<'_>)],
    ) -> Result<Vec<f32>> {
        let mut session = self.session(graph)?;
        let values = self.inputs(graph, inputs)?;
        let outputs = session.run(values).map_err(|e| inference_err(graph, e))?;
        let name = graph.contract().1[0];
        Ok(extract_f32(graph, &outputs[name])?.1)
    }

    fn session(&self, graph: Graph) -> Result<std::sync::MutexGuard<'_, Session>> {
        self.sessions[graph.index()].lock().map_err(|_| {
            EngineError::Inference(format!(
                "the {} session was poisoned by an earlier failure",
                graph.key()
            ))
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
            let dtype = spec
                .inputs
                .iter()
                .find(|t| t.name == *name)
                .map(|t| t.dtype)
                .unwrap_or(DType::F32);
            let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            let value: SessionInputValue<'v> = match (data, dtype) {
                (Input::F32(v), DType::F32) => {
                    TensorRef::from_array_view((shape, *v)).map(Into::into)
                }
                (Input::F32(v), DType::F16) => Tensor::from_array((
                    shape,
                    v.iter()
                        .map(|&x| half::f16::from_f32(x))
                        .collect::<Vec<_>>(),
                ))
                .map(Into::into),
                (Input::I64(v), DType::I64) => {
                    TensorRef::from_array_view((shape, *v)).map(Into::into)
                }
                (Input::I64(v), DType::F32) => {
                    Tensor::from_array((shape, v.iter().map(|&x| x as f32).collect::<Vec<_>>()))
                        .map(Into::into)
                }
                (Input::I64(v), DType::F16) => Tensor::from_array((
                    shape,
                    v.iter()
                        .map(|&x| half::f16::from_f32(x as f32))
                        .collect::<Vec<_>>(),
                ))
                .map(Into::into),
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
    let (shape, data) = value
        .try_extract_tensor::<half::f16>()
        .map_err(|e| inference_err(graph, e))?;
    Ok((
        shape.iter().map(|&d| d as usize).collect(),
        data.iter().map(|v| v.to_f32()).collect(),
    ))
}

fn inference_err(graph: Graph, e: impl std::fmt::Display) -> EngineError {
    EngineError::Inference(format!("the {} graph failed: {e}", graph.key()))
}

fn check_len(name: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(EngineError::InvalidInput(format!(
            "`{name}` has {got} values where its shape needs {want}"
        )))
    }
}

fn check_out_len(name: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(EngineError::Inference(format!(
            "the graph returned {got} values for `{name}`, expected {want}"
        )))
    }
}

fn expect_len(name: &str, data: Vec<f32>, want: usize) -> Result<Vec<f32>> {
    check_out_len(name, data.len(), want)?;
    Ok(data)
}

#[cfg(test)]
mod tests;
