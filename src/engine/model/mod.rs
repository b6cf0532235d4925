// SPDX-License-Identifier: MPL-2.0
//! A validated model directory (DESIGN.md §1) and the typed calls of its four
//! graphs, whatever runs them: a [`GraphBackend`] (ONNX Runtime sessions in
//! this process, `onnx.rs`, or Open Inference Protocol servers over gRPC,
//! `remote/`). Nothing above this layer knows which backend is in use. Loading refuses, with a sentence, what `manifest.rs` refuses (a
//! missing directory or manifest, another format or version, a missing or
//! altered graph or external data file), a graph the backend cannot load, and
//! graph inputs/outputs that differ from the manifest.
//!
//! [`Model::shared`] gives every caller in the process that asks for the same
//! directory, session configuration and servers the same loaded model, as long as its
//! files are unchanged (one 2.6 GB U-Net in memory for many streams).

mod onnx;
mod remote;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use super::cancel::Cancel;
use super::error::{EngineError, Result};
use super::limits;
use super::manifest::check_graph_files;
pub use super::manifest::{
    DType, Graph, GraphSpec, MANIFEST_FORMAT, MANIFEST_VERSION, Manifest, TensorSpec, sha256_file,
};
use super::runtime::SessionConfig;
pub use onnx::OrtBackend;
pub use remote::{
    Header, RemoteBackend, Secret, ServerSecurity, is_loopback, parse_headers, parse_server_url,
    server_host,
};

/// How to load a model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelOptions {
    /// The model directory; its manifest is the contract even when servers run the graphs.
    pub model_dir: PathBuf,
    /// The in-process sessions (unused with servers).
    pub session: SessionConfig,
    /// Inference servers that run the graphs instead; none = in process.
    pub remote: RemoteOptions,
}

/// Where remote graph calls go, and how long they may take.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteOptions {
    /// Open Inference Protocol servers, `grpc://host:port`, each serving the four
    /// graphs; calls go round-robin over those that answer. Empty = in process.
    pub servers: Vec<String>,
    /// Deadline of one graph call, retries included.
    pub timeout: Duration,
    /// Further tries of a call whose server is unavailable, each on the next server.
    pub retries: u32,
    /// TLS files for `grpcs://` servers and headers sent with every call.
    pub security: ServerSecurity,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            servers: Vec::new(),
            timeout: Duration::from_millis(limits::DEFAULT_INFERENCE_TIMEOUT_MS.into()),
            retries: limits::INFERENCE_RETRIES,
            security: ServerSecurity::default(),
        }
    }
}

/// A borrowed graph input.
pub enum InputData<'a> {
    F32(&'a [f32]),
    I64(&'a [i64]),
}

/// One named input of a graph call.
pub struct GraphInput<'a> {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub data: InputData<'a>,
}

/// Where a model's graphs run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// "cpu" or "cuda".
    pub provider: &'static str,
    /// The CUDA device, where there is one.
    pub device: Option<i32>,
    /// Why `auto` did not get CUDA.
    pub note: Option<String>,
    /// Replaces `provider[:device]` in [`Placement::label`] (the remote backend lists its servers).
    pub label: Option<String>,
}

impl Placement {
    /// `cpu`, `cuda:N` or `remote:grpc://…,grpc://…`, as the element's stats show it.
    pub fn label(&self) -> String {
        match (&self.label, self.device) {
            (Some(label), _) => label.clone(),
            (None, Some(device)) => format!("{}:{device}", self.provider),
            (None, None) => self.provider.to_owned(),
        }
    }
}

/// The calls one inference server has taken from a remote backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// The server, as `grpc://host:port`.
    pub url: String,
    /// Graph calls it answered.
    pub calls: u64,
    /// Calls that failed on it (unreachable, deadline, server error).
    pub failures: u64,
    /// Protobuf bytes of the requests it answered and of its responses.
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// The inputs of a window's U-Net calls that are the same at every step.
pub struct UnetConstants<'a> {
    /// `[batch,9,16,h,w]`; each item's first 4 channels (the noisy latents)
    /// are replaced at every step.
    pub sample: &'a [f32],
    pub batch: usize,
    pub latent: (usize, usize),
    pub fps: i64,
    /// `[batch,T,D]`.
    pub context: &'a [f32],
    pub tokens_dim: (usize, usize),
}

/// The U-Net calls of one window with their constant inputs placed once
/// (IO binding): each step sends only the noisy latents and the timestep.
pub trait BoundUnet {
    /// One step: `latents` `[batch,4,16,h,w]`, timestep `t`; writes
    /// `noise_pred [batch,4,16,h,w]` into `out`.
    /// `cancel` ends the call early with [`EngineError::Cancelled`].
    fn step(
        &mut self,
        latents: &[f32],
        timestep: i64,
        out: &mut Vec<f32>,
        cancel: &Cancel,
    ) -> Result<()>;
    /// Bytes copied between host memory and ONNX Runtime's since the binding,
    /// the constants included.
    fn transfer_bytes(&self) -> u64;
}

/// A run of windows whose whole denoising loop stays in ONNX Runtime's memory
/// (a GPU's): every guidance item of every window in one U-Net call.
pub struct ResidentConstants<'a> {
    /// The U-Net's inputs at the first step; `unet.batch` = `windows * items`.
    pub unet: UnetConstants<'a>,
    pub windows: usize,
    /// Guidance items per window.
    pub items: usize,
    /// State rows per window: the latents, then the scheduler's memory slots.
    pub rows: usize,
    /// `[windows,rows,4,16,h,w]`: row 0 the noisy latents, the others zero.
    pub state: &'a [f32],
}

/// The denoising loop of a run of windows on the device: each step runs the
/// U-Net and then the scheduler step and the guidance formula as one map over
/// each window's rows and predictions, so that only the map and the timestep
/// go in at each step and only the final latents come back.
pub trait ResidentUnet {
    /// One step at `timestep`: the U-Net on the current latents, then for each
    /// window `rows' = map · [rows; predictions]` with `maps`
    /// `[windows,rows,rows+items]` (`StepRecipe::linear_map`).
    fn step(&mut self, timestep: i64, maps: &[f32], cancel: &Cancel) -> Result<()>;
    /// The latents after the last step, `[windows,4,16,h,w]`.
    fn latents(&mut self, out: &mut Vec<f32>) -> Result<()>;
    /// Bytes copied between host memory and ONNX Runtime's so far.
    fn transfer_bytes(&self) -> u64;
}

/// What runs the graphs of a model.
pub trait GraphBackend: Send + Sync {
    /// Runs `graph` on `inputs` (named as in the manifest), writes its one
    /// output as f32 into `out` and returns the output's shape. A request on
    /// `cancel` ends the call early with [`EngineError::Cancelled`].
    fn run(
        &self,
        graph: Graph,
        inputs: &[GraphInput<'_>],
        out: &mut Vec<f32>,
        cancel: &Cancel,
    ) -> Result<Vec<usize>>;
    fn placement(&self) -> &Placement;
    /// Per-server counters of a backend that calls servers; `None` in process.
    fn server_stats(&self) -> Option<Vec<ServerStats>> {
        None
    }
    /// The U-Net with `constants` bound, where the backend binds inputs;
    /// `None`: every step calls [`GraphBackend::run`] with all its inputs.
    fn bind_unet<'b>(
        &'b self,
        _constants: &UnetConstants<'_>,
    ) -> Result<Option<Box<dyn BoundUnet + 'b>>> {
        Ok(None)
    }
    /// The denoising loop of `constants` on the device, where the backend can
    /// keep it there; `None`: the steps run on the host.
    fn bind_resident<'b>(
        &'b self,
        _constants: &ResidentConstants<'_>,
    ) -> Result<Option<Box<dyn ResidentUnet + 'b>>> {
        Ok(None)
    }
}

/// A validated model directory and the backend that runs its graphs.
pub struct Model {
    dir: PathBuf,
    manifest: Manifest,
    backend: Box<dyn GraphBackend>,
}

/// Models loaded in this process, by options, while someone holds them.
static SHARED: LazyLock<Mutex<HashMap<ModelOptions, Weak<Model>>>> =
    LazyLock::new(Default::default);
/// How many times this process loaded each model directory (for diagnostics and tests).
static LOADS: LazyLock<Mutex<HashMap<PathBuf, usize>>> = LazyLock::new(Default::default);

/// How many times this process has loaded the model directory `dir`.
pub fn loads_of(dir: &Path) -> usize {
    let key = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    LOADS.lock().unwrap().get(&key).copied().unwrap_or(0)
}

impl Model {
    /// Loads and validates a model directory (manifest, file hashes, graph IO).
    pub fn load(options: &ModelOptions) -> Result<Arc<Model>> {
        let dir = options.model_dir.clone();
        let manifest = Manifest::read(&dir)?;
        check_graph_files(&dir, &manifest)?;
        let backend: Box<dyn GraphBackend> = if options.remote.servers.is_empty() {
            Box::new(OrtBackend::open(&dir, &manifest, &options.session)?)
        } else {
            Box::new(RemoteBackend::connect(&options.remote, &manifest)?)
        };
        let key = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        *LOADS.lock().unwrap().entry(key).or_default() += 1;
        Ok(Arc::new(Model {
            dir,
            manifest,
            backend,
        }))
    }

    /// The model of `options` that this process already holds, if its manifest
    /// and files are unchanged (checked again on every call: the manifest is
    /// read and compared whole, every file's hash checked, read again when its
    /// size, modification time or inode changed), else a fresh load.
    pub fn shared(options: &ModelOptions) -> Result<Arc<Model>> {
        let manifest = Manifest::read(&options.model_dir)?;
        check_graph_files(&options.model_dir, &manifest)?;
        let mut shared = SHARED.lock().unwrap();
        shared.retain(|_, model| model.strong_count() > 0);
        if let Some(model) = shared.get(options).and_then(Weak::upgrade)
            && model.manifest == manifest
        {
            return Ok(model);
        }
        let model = Model::load(options)?;
        shared.insert(options.clone(), Arc::downgrade(&model));
        Ok(model)
    }

    /// Where the graphs run.
    pub fn placement(&self) -> &Placement {
        self.backend.placement()
    }
    /// Per-server counters when the graphs run on inference servers.
    pub fn server_stats(&self) -> Option<Vec<ServerStats>> {
        self.backend.server_stats()
    }
    /// The execution provider the graphs run on: "cpu", "cuda" or "remote".
    pub fn provider_in_use(&self) -> &'static str {
        self.placement().provider
    }
    /// With `execution-provider=auto` on the CPU: why CUDA was not used.
    pub fn provider_note(&self) -> Option<&str> {
        self.placement().note.as_deref()
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
    pub fn encode(
        &self,
        images: &[f32],
        n: usize,
        (h, w): (usize, usize),
        cancel: &Cancel,
    ) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        self.call(
            Graph::VaeEncoder,
            &[input_f32("images", vec![n, 3, h, w], images)?],
            &[n, 4, h / 8, w / 8],
            &mut out,
            cancel,
        )?;
        Ok(out)
    }

    /// VAE decoder: latents `[n,4,h,w]` (unscaled) → images `[n,3,8h,8w]` (unclamped).
    pub fn decode(
        &self,
        latents: &[f32],
        n: usize,
        (h, w): (usize, usize),
        cancel: &Cancel,
    ) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        self.call(
            Graph::VaeDecoder,
            &[input_f32("latents", vec![n, 4, h, w], latents)?],
            &[n, 3, h * 8, w * 8],
            &mut out,
            cancel,
        )?;
        Ok(out)
    }

    /// Global image encoder: 16 scaled global latents `[16,4,h,w]` → context `[1,T,D]`.
    /// Returns the context and its `(T, D)`.
    pub fn global_context(
        &self,
        latents16: &[f32],
        (h, w): (usize, usize),
        cancel: &Cancel,
    ) -> Result<(Vec<f32>, usize, usize)> {
        let mut out = Vec::new();
        let input = input_f32("global_latents", vec![16, 4, h, w], latents16)?;
        let shape = self
            .backend
            .run(Graph::GlobalEncoder, &[input], &mut out, cancel)?;
        match shape[..] {
            [1, t, d] if out.len() == t * d => Ok((out, t, d)),
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
        (h, w): (usize, usize),
        timestep: i64,
        fps: i64,
        context: &[f32],
        (tokens, dim): (usize, usize),
        out: &mut Vec<f32>,
        cancel: &Cancel,
    ) -> Result<()> {
        let timesteps = vec![timestep; batch];
        let fps_values = vec![fps; batch];
        let inputs = [
            input_f32("sample", vec![batch, 9, 16, h, w], sample)?,
            GraphInput {
                name: "timestep",
                shape: vec![batch],
                data: InputData::I64(&timesteps),
            },
            GraphInput {
                name: "fps",
                shape: vec![batch],
                data: InputData::I64(&fps_values),
            },
            input_f32("context", vec![batch, tokens, dim], context)?,
        ];
        self.call(Graph::Unet, &inputs, &[batch, 4, 16, h, w], out, cancel)
    }

    /// The U-Net of one window with its constant inputs bound once, where the
    /// backend does that (IO binding on); `None`: call [`Model::unet`] per step.
    pub fn bind_unet(
        &self,
        constants: &UnetConstants<'_>,
    ) -> Result<Option<Box<dyn BoundUnet + '_>>> {
        check_unet_constants(constants)?;
        self.backend.bind_unet(constants)
    }

    /// The denoising loop of a run of windows kept in ONNX Runtime's memory,
    /// where the backend does that (IO binding on); `None` otherwise.
    pub fn bind_resident(
        &self,
        constants: &ResidentConstants<'_>,
    ) -> Result<Option<Box<dyn ResidentUnet + '_>>> {
        let c = &constants.unet;
        check_unet_constants(c)?;
        let (h, w) = c.latent;
        input_f32(
            "state",
            vec![constants.windows, constants.rows, 4, 16, h, w],
            constants.state,
        )?;
        if c.batch != constants.windows * constants.items || constants.rows == 0 {
            return Err(EngineError::InvalidInput(format!(
                "a resident run of {} windows of {} items cannot have a batch of {} and {} rows",
                constants.windows, constants.items, c.batch, constants.rows
            )));
        }
        self.backend.bind_resident(constants)
    }

    /// The bytes one unbound [`Model::unet`] call hands to the backend and
    /// takes back, in the graph's element types: what crosses to a GPU at
    /// every step (on the CPU, what ONNX Runtime reads and the engine copies out).
    pub fn unet_transfer_bytes(
        &self,
        batch: usize,
        (h, w): (usize, usize),
        (tokens, dim): (usize, usize),
    ) -> u64 {
        let spec = self.manifest.graph(Graph::Unet);
        let size = |name: &str, tensors: &[TensorSpec]| {
            tensors
                .iter()
                .find(|t| t.name == name)
                .map_or(4, |t| t.dtype.size_of()) as u64
        };
        let values = |n: usize| (batch * n) as u64;
        let inputs = &spec.inputs;
        values(9 * 16 * h * w) * size("sample", inputs)
            + values(1) * (size("timestep", inputs) + size("fps", inputs))
            + values(tokens * dim) * size("context", inputs)
            + values(4 * 16 * h * w) * size(&spec.outputs[0].name, &spec.outputs)
    }

    /// Runs a graph and checks that its output has the `want` shape.
    fn call(
        &self,
        graph: Graph,
        inputs: &[GraphInput<'_>],
        want: &[usize],
        out: &mut Vec<f32>,
        cancel: &Cancel,
    ) -> Result<()> {
        let shape = self.backend.run(graph, inputs, out, cancel)?;
        if shape != want || out.len() != want.iter().product::<usize>() {
            return Err(EngineError::Inference(format!(
                "the {} graph returned shape {shape:?} ({} values), expected {want:?}",
                graph.key(),
                out.len()
            )));
        }
        Ok(())
    }
}

/// A float input whose data must fill `shape` exactly.
/// Checks that the sample and the context of `c` have the values their shapes need.
fn check_unet_constants(c: &UnetConstants<'_>) -> Result<()> {
    let (h, w) = c.latent;
    let (tokens, dim) = c.tokens_dim;
    input_f32("sample", vec![c.batch, 9, 16, h, w], c.sample)?;
    input_f32("context", vec![c.batch, tokens, dim], c.context)?;
    Ok(())
}

fn input_f32<'a>(name: &'static str, shape: Vec<usize>, data: &'a [f32]) -> Result<GraphInput<'a>> {
    let want: usize = shape.iter().product();
    if data.len() != want {
        return Err(EngineError::InvalidInput(format!(
            "`{name}` has {} values where its shape {shape:?} needs {want}",
            data.len()
        )));
    }
    Ok(GraphInput {
        name,
        shape,
        data: InputData::F32(data),
    })
}

#[cfg(test)]
mod tests;
