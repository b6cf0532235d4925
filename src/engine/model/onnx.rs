// SPDX-License-Identifier: MPL-2.0
//! The in-process backend: one ONNX Runtime session per graph, opened on the
//! requested execution provider, its inputs and outputs checked against the
//! manifest. Inputs are borrowed where the graph's dtype is the caller's;
//! float16 graphs get their inputs converted and their output widened. The
//! U-Net can also be called through IO binding (`binding.rs`).

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use parking_lot::{FairMutex, FairMutexGuard};

use ort::session::{RunOptions, Session, SessionInputValue};
use ort::value::{DynValue, Tensor, TensorRef, ValueType};

use super::{
    BoundUnet, GraphBackend, GraphInput, InputData, Placement, ResidentConstants, ResidentUnet,
    UnetConstants,
};
use crate::engine::cancel::{Cancel, Interrupt};
use crate::engine::error::{EngineError, Result};
use crate::engine::manifest::{
    DType, Graph, GraphSpec, Manifest, TensorSpec, file_in_model_dir, model_err, shape_text,
};
use crate::engine::runtime::{self, ExecutionProvider, GraphRole, Provider, SessionConfig};

mod binding;
mod resident;

/// One side of a graph: its name, the session's (name, type) pairs, the manifest's tensors.
type IoSide<'a> = (&'a str, Vec<(&'a str, &'a ValueType)>, &'a [TensorSpec]);

/// The four sessions of a model directory.
pub struct OrtBackend {
    /// In [`Graph::ALL`] order, each behind a fair lock: the streams that
    /// share a loaded model take turns call by call, in the order they asked
    /// (a stream that just ran cannot take the session again before those
    /// waiting), so that none starves.
    sessions: Vec<FairMutex<Session>>,
    /// The manifest's dtype of every input, per graph.
    graphs: Vec<GraphSpec>,
    /// The graph files, for the errors of a failed call.
    files: Vec<String>,
    placement: Placement,
    provider: Provider,
    config: SessionConfig,
    /// The U-Net's device buffers and bindings, kept from window to window.
    unet_buffers: binding::BufferPool,
}

impl OrtBackend {
    /// Opens every graph of `manifest` in `dir`; with `auto`, all of them must
    /// land on the same provider.
    pub fn open(dir: &Path, manifest: &Manifest, config: &SessionConfig) -> Result<OrtBackend> {
        if config.provider == ExecutionProvider::Cpu {
            refuse_fp16_on_cpu(dir, manifest, None)?;
        }
        let mut sessions = Vec::new();
        let mut provider: Option<Provider> = None;
        let mut note = None;
        for graph in Graph::ALL {
            let spec = manifest.graph(graph);
            let role = match graph {
                Graph::Unet => GraphRole::Unet,
                _ => GraphRole::Other,
            };
            let opened =
                runtime::open_session(&file_in_model_dir(dir, graph, &spec.file)?, config, role)?;
            check_session_io(graph, &opened.session, spec)?;
            if let Some(first) = provider.filter(|p| *p != opened.provider) {
                return Err(EngineError::Runtime(format!(
                    "the {} graph started on {} while the others run on {}",
                    graph.key(),
                    opened.provider.name(),
                    first.name()
                )));
            }
            provider = Some(opened.provider);
            note = note.or(opened.fallback_reason);
            sessions.push(FairMutex::new(opened.session));
        }
        let provider = provider.unwrap_or(Provider::Cpu);
        if provider == Provider::Cpu {
            refuse_fp16_on_cpu(dir, manifest, note.as_deref())?;
        }
        Ok(OrtBackend {
            sessions,
            graphs: manifest.graphs.clone(),
            files: Graph::ALL
                .iter()
                .map(|&g| manifest.graph(g).file.clone())
                .collect(),
            placement: Placement {
                provider: provider.name(),
                device: provider.on_device().then_some(config.device_id),
                note,
                label: None,
            },
            provider,
            config: config.clone(),
            unet_buffers: binding::BufferPool::default(),
        })
    }

    /// A call of `graph` that ONNX Runtime refused or failed, naming the graph and its file.
    fn run_err(&self, graph: Graph, e: impl std::fmt::Display) -> EngineError {
        EngineError::Inference(format!(
            "the {} graph ({}) failed at run time: {e}",
            graph.title(),
            self.files[graph.index()]
        ))
    }

    fn session(&self, graph: Graph) -> Result<FairMutexGuard<'_, Session>> {
        Ok(self.sessions[graph.index()].lock())
    }

    /// Named session inputs in each input's manifest dtype (borrowed where no
    /// conversion is needed).
    fn values<'v>(
        &self,
        graph: Graph,
        inputs: &[GraphInput<'v>],
    ) -> Result<Vec<(Cow<'static, str>, SessionInputValue<'v>)>> {
        let spec = &self.graphs[graph.index()];
        let mut out = Vec::with_capacity(inputs.len());
        for input in inputs {
            let dtype = spec.input_dtype(input.name).unwrap_or(DType::F32);
            let shape: Vec<i64> = input.shape.iter().map(|&d| d as i64).collect();
            let value: SessionInputValue<'v> = match (&input.data, dtype) {
                (InputData::F32(v), DType::F32) => {
                    TensorRef::from_array_view((shape, *v)).map(Into::into)
                }
                (InputData::I64(v), DType::I64) => {
                    TensorRef::from_array_view((shape, *v)).map(Into::into)
                }
                (InputData::F32(v), DType::F16) => Tensor::from_array((
                    shape,
                    v.iter()
                        .map(|&x| half::f16::from_f32(x))
                        .collect::<Vec<_>>(),
                ))
                .map(Into::into),
                (InputData::I64(v), DType::F32) => {
                    Tensor::from_array((shape, v.iter().map(|&x| x as f32).collect::<Vec<_>>()))
                        .map(Into::into)
                }
                (InputData::I64(v), DType::F16) => Tensor::from_array((
                    shape,
                    v.iter()
                        .map(|&x| half::f16::from_f32(x as f32))
                        .collect::<Vec<_>>(),
                ))
                .map(Into::into),
                (InputData::F32(_), DType::I64) => {
                    return Err(model_err(format!(
                        "the {} input `{}` is int64 where the engine sends floats",
                        graph.key(),
                        input.name
                    )));
                }
            }
            .map_err(|e| self.run_err(graph, e))?;
            out.push((Cow::Borrowed(input.name), value));
        }
        Ok(out)
    }
}

impl GraphBackend for OrtBackend {
    fn run(
        &self,
        graph: Graph,
        inputs: &[GraphInput<'_>],
        out: &mut Vec<f32>,
        cancel: &Cancel,
    ) -> Result<Vec<usize>> {
        let values = self.values(graph, inputs)?;
        let mut session = self.session(graph)?;
        let options = Arc::new(RunOptions::new().map_err(|e| self.run_err(graph, e))?);
        let _in_flight = cancel.track(options.clone())?;
        let outputs =
            session
                .run_with_options(values, &options)
                .map_err(|e| match cancel.check() {
                    Err(cancelled) => cancelled,
                    Ok(()) => self.run_err(graph, e),
                })?;
        let name = graph.contract().1[0];
        extract_f32(&outputs[name], out).map_err(|e| self.run_err(graph, e))
    }

    fn placement(&self) -> &Placement {
        &self.placement
    }

    fn bind_unet<'b>(
        &'b self,
        constants: &UnetConstants<'_>,
    ) -> Result<Option<Box<dyn BoundUnet + 'b>>> {
        if !self.config.gpu.io_binding {
            return Ok(None);
        }
        binding::bind(self, constants)
    }

    fn bind_resident<'b>(
        &'b self,
        constants: &ResidentConstants<'_>,
    ) -> Result<Option<Box<dyn ResidentUnet + 'b>>> {
        if !self.config.gpu.io_binding {
            return Ok(None);
        }
        resident::bind(self, constants)
    }
}

/// A cancel request sets the run's terminate flag: ONNX Runtime checks it
/// between kernels and returns an error.
impl Interrupt for RunOptions {
    fn interrupt(&self) {
        // Only fails on an invalid handle, which a live `RunOptions` never is.
        let _ = self.terminate();
    }
}

/// Copies a float32 or float16 output into `out` (widened to f32) and returns its shape.
fn extract_f32(value: &DynValue, out: &mut Vec<f32>) -> ort::Result<Vec<usize>> {
    out.clear();
    let shape = if let Ok((shape, data)) = value.try_extract_tensor::<f32>() {
        out.extend_from_slice(data);
        shape.to_vec()
    } else {
        let (shape, data) = value.try_extract_tensor::<half::f16>()?;
        out.extend(data.iter().map(|v| v.to_f32()));
        shape.to_vec()
    };
    Ok(shape.iter().map(|&d| d as usize).collect())
}

/// An fp16 export is for the CUDA execution provider: on the CPU one it would
/// run (where at all) far slower than the fp32 export of the same model.
fn refuse_fp16_on_cpu(dir: &Path, manifest: &Manifest, cuda_note: Option<&str>) -> Result<()> {
    if manifest.precision != "fp16" {
        return Ok(());
    }
    let why_cpu = cuda_note.map_or(String::new(), |why| format!(" (CUDA was not used: {why})"));
    Err(EngineError::Runtime(format!(
        "{} holds fp16 graphs, which the CPU execution provider cannot run{why_cpu}: \
         use execution-provider=cuda on a GPU, or export an fp32 model directory for the CPU \
         (python -m m3ddm_export --precision fp32)",
        dir.display()
    )))
}

/// The graph whose engine inputs are `names`, if any.
fn graph_with_inputs(names: &[&str]) -> Option<Graph> {
    Graph::ALL.into_iter().find(|g| {
        let mut wanted = g.contract().0.to_vec();
        let mut got = names.to_vec();
        wanted.sort_unstable();
        got.sort_unstable();
        wanted == got
    })
}

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
        let names: Vec<&str> = actual.iter().map(|(n, _)| *n).collect();
        if what == "inputs"
            && let Some(other) = graph_with_inputs(&names).filter(|other| *other != graph)
        {
            return Err(model_err(format!(
                "{} has the inputs of the {} graph ({names:?}), not those of the {}: \
                 the file is from another graph of the model (re-export the model directory)",
                spec.file,
                other.title(),
                graph.title()
            )));
        }
        if actual.len() != declared.len() {
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
                let graph_dims: Vec<Option<i64>> =
                    dims.iter().map(|&d| (d >= 0).then_some(d)).collect();
                return Err(mismatch(format!(
                    "`{}` has shape {}, the manifest says {}",
                    want.name,
                    shape_text(&graph_dims),
                    shape_text(&want.shape)
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
