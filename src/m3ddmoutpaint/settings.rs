// SPDX-License-Identifier: MPL-2.0
//! The element's properties: their specs (blurb, range, default), the
//! `Settings` they are stored in, and the check made when the element goes to
//! READY (a bad value becomes an error message that names the property).

use std::sync::LazyLock;
use std::time::Duration;

use gst::glib;
use gst::prelude::*;

use super::config::OutputShape;
use super::gpu_properties::{self, GpuSettings};
use super::security_properties::{self, SecuritySettings};
use super::{ExecutionProvider, FillMode, Scheduler};
use crate::engine::{self, limits};

pub const DEFAULT_FILL_MODE: FillMode = FillMode::Outpaint;
pub const DEFAULT_EXECUTION_PROVIDER: ExecutionProvider = ExecutionProvider::Auto;
pub const DEFAULT_SCHEDULER: Scheduler = Scheduler::Pndm;
/// How long held frames wait for more input by default before they run as a chunk.
pub const DEFAULT_STALL_TIMEOUT_MS: u32 = 3000;

/// Every property value, as set by the application.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub aspect: gst::Fraction,
    pub fill_mode: FillMode,
    pub model_path: Option<String>,
    pub execution_provider: ExecutionProvider,
    /// CUDA devices, comma-separated (`0`, `0,1,2,3`).
    pub device_ids: String,
    pub steps: u32,
    pub scheduler: Scheduler,
    pub guidance_scale: f64,
    pub global_guidance_scale: f64,
    pub lookahead: u32,
    pub seed: u64,
    pub fill_color: u32,
    pub feather: u32,
    pub n_threads: u32,
    /// Margins (top, right, bottom, left) as fractions of the source, instead of `aspect`.
    pub expand: Option<String>,
    /// Whether `aspect` was set (then `expand` may not be).
    pub aspect_set: bool,
    pub scene_threshold: f64,
    /// The longest a frame may stay (ns; 0: unbounded, or the reported latency when live).
    pub max_latency: u64,
    /// How long held frames wait for input before they run as a chunk (ms; 0: as long as it takes).
    pub stall_timeout: u32,
    pub inference_server: Option<String>,
    pub inference_timeout: u32,
    /// `cudnn-algo-search`, `cuda-graphs`, `io-binding`, `tensorrt-cache`.
    pub gpu: GpuSettings,
    pub security: SecuritySettings,
    /// A keyframe plan of the whole stream to run (`planned.rs`).
    pub plan_file: Option<String>,
    /// Where the keyframe pass writes its plan, and the stream's frame count.
    pub write_plan: Option<String>,
    pub plan_frames: u64,
    /// `plan-cuts`: the first frames of the shots after the first, for write-plan.
    pub plan_cuts: Option<String>,
    /// `strides`: the coarse-to-fine stride list (unset or empty: the model's).
    pub strides: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            aspect: default_aspect(),
            fill_mode: DEFAULT_FILL_MODE,
            model_path: None,
            execution_provider: DEFAULT_EXECUTION_PROVIDER,
            device_ids: limits::DEFAULT_DEVICE_ID.to_string(),
            steps: limits::DEFAULT_STEPS,
            scheduler: DEFAULT_SCHEDULER,
            guidance_scale: limits::DEFAULT_GUIDANCE_SCALE,
            global_guidance_scale: limits::DEFAULT_GLOBAL_GUIDANCE_SCALE,
            lookahead: limits::DEFAULT_LOOKAHEAD,
            seed: limits::DEFAULT_SEED,
            fill_color: limits::DEFAULT_FILL_COLOR,
            feather: limits::DEFAULT_FEATHER,
            n_threads: limits::DEFAULT_THREADS,
            expand: None,
            aspect_set: false,
            scene_threshold: 0.0,
            max_latency: 0,
            stall_timeout: DEFAULT_STALL_TIMEOUT_MS,
            inference_server: None,
            inference_timeout: limits::DEFAULT_INFERENCE_TIMEOUT_MS,
            gpu: GpuSettings::default(),
            security: SecuritySettings::default(),
            plan_file: None,
            write_plan: None,
            plan_frames: 0,
            plan_cuts: None,
            strides: None,
        }
    }
}

fn default_aspect() -> gst::Fraction {
    let (num, den) = limits::DEFAULT_ASPECT;
    gst::Fraction::new(num as i32, den as i32)
}

impl Settings {
    /// The output display aspect as an engine ratio (checked at READY).
    pub fn aspect_ratio(&self) -> Result<engine::Ratio, String> {
        let (num, den) = (self.aspect.numer(), self.aspect.denom());
        if num <= 0 || den <= 0 {
            return Err(format!("aspect {num}/{den} must be a positive fraction"));
        }
        engine::Ratio::new(num as u32, den as u32)
            .map_err(|err| format!("aspect {num}/{den}: {err}"))
    }

    /// The shape of the `src` pad's output: `expand`'s margins, else `aspect`.
    pub fn output_shape(&self) -> Result<OutputShape, String> {
        match self.expand.as_deref().filter(|e| !e.trim().is_empty()) {
            Some(text) => parse_expand(text).map(OutputShape::Expand),
            None => self.aspect_ratio().map(OutputShape::Aspect),
        }
    }

    /// The devices of `device-id`: one or more distinct indices, comma-separated.
    pub fn device_list(&self) -> Result<Vec<i32>, String> {
        let mut devices = Vec::new();
        for entry in self.device_ids.split(',') {
            let device = entry
                .trim()
                .parse::<i32>()
                .ok()
                .filter(|d| (0..=limits::MAX_DEVICE_ID).contains(d))
                .ok_or_else(|| {
                    format!(
                        "device-id `{}`: `{}` is not a device index 0-{}",
                        self.device_ids,
                        entry.trim(),
                        limits::MAX_DEVICE_ID
                    )
                })?;
            if devices.contains(&device) {
                return Err(format!(
                    "device-id `{}` names device {device} twice",
                    self.device_ids
                ));
            }
            devices.push(device);
        }
        Ok(devices)
    }

    /// How to load the model (one session set per device), when the fill mode needs one.
    pub fn model_options(&self) -> Option<Result<Vec<engine::ModelOptions>, String>> {
        if self.fill_mode != FillMode::Outpaint {
            return None;
        }
        let Some(path) = self.model_path.as_deref().filter(|p| !p.is_empty()) else {
            return Some(Err("model-path is not set: fill-mode=outpaint needs a model directory \
                 (a folder with manifest.json written by m3ddm_export), or use fill-mode=blur or color"
                .to_string()));
        };
        let model_dir = match engine::model_dirs::resolve_model(path) {
            Ok(dir) => dir,
            Err(err) => return Some(Err(format!("model-path={path}: {err}"))),
        };
        if !model_dir.is_dir() {
            return Some(Err(format!("model-path {path} is not a directory")));
        }
        let devices = match self.device_list() {
            Ok(devices) => devices,
            Err(err) => return Some(Err(err)),
        };
        let servers = match self.inference_servers() {
            Ok(servers) => servers,
            Err(err) => return Some(Err(err)),
        };
        let gpu = match self.gpu.options() {
            Ok(gpu) => gpu,
            Err(err) => return Some(Err(err)),
        };
        let security = match servers.is_empty() {
            true => engine::model::ServerSecurity::default(),
            false => match self.security.security() {
                Ok(security) => security,
                Err(err) => return Some(Err(err)),
            },
        };
        let options = |device_id| engine::ModelOptions {
            model_dir: model_dir.clone(),
            session: engine::SessionConfig {
                provider: self.execution_provider.into(),
                device_id,
                threads: self.n_threads,
                gpu: gpu.clone(),
            },
            remote: engine::RemoteOptions {
                servers: servers.clone(),
                timeout: Duration::from_millis(self.inference_timeout.into()),
                security: security.clone(),
                ..engine::RemoteOptions::default()
            },
        };
        if servers.is_empty() {
            return Some(Ok(devices.into_iter().map(options).collect()));
        }
        // On servers: one model (one client over all of them, `Model::shared`)
        // and a denoiser per server, so that the servers work at once.
        Some(Ok(vec![options(devices[0]); servers.len()]))
    }

    /// The servers of `inference-server`, each checked (none = in process).
    fn inference_servers(&self) -> Result<Vec<String>, String> {
        let list = self.inference_server.as_deref().unwrap_or_default();
        list.split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| {
                engine::model::parse_server_url(url).map_err(|err| match err {
                    engine::EngineError::InvalidInput(sentence) => sentence,
                    other => other.to_string(),
                })
            })
            .collect()
    }

    /// The stride list of `strides`; `None` when unset or empty (the model's own).
    pub fn stride_list(&self) -> Result<Option<engine::planner::Strides>, String> {
        match self
            .strides
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            None => Ok(None),
            Some(text) => engine::planner::Strides::parse(text)
                .map(Some)
                .map_err(|err| format!("strides={text}: {}", err.sentence())),
        }
    }

    /// The denoising parameters of the stream.
    pub fn denoise_params(&self) -> engine::DenoiseParams {
        engine::DenoiseParams {
            steps: self.steps,
            scheduler: self.scheduler.into(),
            guidance_scale: self.guidance_scale as f32,
            global_guidance_scale: self.global_guidance_scale as f32,
            seed: self.seed,
        }
    }

    /// The colour of `fill-mode=color` as RGB bytes (the alpha byte of the ARGB value is not used).
    pub fn fill_rgb(&self) -> [u8; 3] {
        let [_, r, g, b] = self.fill_color.to_be_bytes();
        [r, g, b]
    }

    /// Checks the values that the property specs cannot check on their own.
    pub fn validate(&self) -> Result<(), String> {
        self.aspect_ratio()?;
        self.device_list()?;
        self.gpu.options()?;
        if self.aspect_set && self.expand.as_deref().is_some_and(|e| !e.trim().is_empty()) {
            return Err(
                "aspect and expand are both set: use aspect for a display aspect ratio, or expand \
                 for margins on each side, not both"
                    .into(),
            );
        }
        self.output_shape()?;
        self.stride_list()?;
        if !(self.guidance_scale.is_finite() && self.global_guidance_scale.is_finite()) {
            return Err("guidance-scale and global-guidance-scale must be finite numbers".into());
        }
        Ok(())
    }

    pub fn set_property(&mut self, value: &glib::Value, pspec: &glib::ParamSpec) {
        if self.gpu.set(pspec.name(), value) || self.security.set(pspec.name(), value) {
            return;
        }
        match pspec.name() {
            "aspect" => {
                self.aspect = value.get().expect("type checked upstream");
                self.aspect_set = true;
            }
            "fill-mode" => self.fill_mode = value.get().expect("type checked upstream"),
            "model-path" => self.model_path = value.get().expect("type checked upstream"),
            "execution-provider" => {
                self.execution_provider = value.get().expect("type checked upstream")
            }
            "device-id" => {
                self.device_ids = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_default()
            }
            "steps" => self.steps = value.get().expect("type checked upstream"),
            "scheduler" => self.scheduler = value.get().expect("type checked upstream"),
            "guidance-scale" => self.guidance_scale = value.get().expect("type checked upstream"),
            "global-guidance-scale" => {
                self.global_guidance_scale = value.get().expect("type checked upstream")
            }
            "lookahead" => self.lookahead = value.get().expect("type checked upstream"),
            "seed" => self.seed = value.get().expect("type checked upstream"),
            "fill-color" => self.fill_color = value.get().expect("type checked upstream"),
            "feather" => self.feather = value.get().expect("type checked upstream"),
            "n-threads" => self.n_threads = value.get().expect("type checked upstream"),
            "expand" => self.expand = value.get().expect("type checked upstream"),
            "scene-threshold" => self.scene_threshold = value.get().expect("type checked upstream"),
            "max-latency" => self.max_latency = value.get().expect("type checked upstream"),
            "stall-timeout" => self.stall_timeout = value.get().expect("type checked upstream"),
            "inference-server" => {
                self.inference_server = value.get().expect("type checked upstream")
            }
            "inference-timeout" => {
                self.inference_timeout = value.get().expect("type checked upstream")
            }
            "plan-file" => self.plan_file = value.get().expect("type checked upstream"),
            "write-plan" => self.write_plan = value.get().expect("type checked upstream"),
            "plan-frames" => self.plan_frames = value.get().expect("type checked upstream"),
            "plan-cuts" => self.plan_cuts = value.get().expect("type checked upstream"),
            "strides" => self.strides = value.get().expect("type checked upstream"),
            other => unreachable!("property {other} is not a setting"),
        }
    }

    pub fn property(&self, pspec: &glib::ParamSpec) -> glib::Value {
        if let Some(value) = self
            .gpu
            .get(pspec.name())
            .or_else(|| self.security.get(pspec.name()))
        {
            return value;
        }
        match pspec.name() {
            "aspect" => self.aspect.to_value(),
            "fill-mode" => self.fill_mode.to_value(),
            "model-path" => self.model_path.to_value(),
            "execution-provider" => self.execution_provider.to_value(),
            "device-id" => self.device_ids.to_value(),
            "steps" => self.steps.to_value(),
            "scheduler" => self.scheduler.to_value(),
            "guidance-scale" => self.guidance_scale.to_value(),
            "global-guidance-scale" => self.global_guidance_scale.to_value(),
            "lookahead" => self.lookahead.to_value(),
            "seed" => self.seed.to_value(),
            "fill-color" => self.fill_color.to_value(),
            "feather" => self.feather.to_value(),
            "n-threads" => self.n_threads.to_value(),
            "expand" => self.expand.to_value(),
            "scene-threshold" => self.scene_threshold.to_value(),
            "max-latency" => self.max_latency.to_value(),
            "stall-timeout" => self.stall_timeout.to_value(),
            "inference-server" => self.inference_server.to_value(),
            "inference-timeout" => self.inference_timeout.to_value(),
            "plan-file" => self.plan_file.to_value(),
            "write-plan" => self.write_plan.to_value(),
            "plan-frames" => self.plan_frames.to_value(),
            "plan-cuts" => self.plan_cuts.to_value(),
            "strides" => self.strides.to_value(),
            other => unreachable!("property {other} is not a setting"),
        }
    }
}

/// `expand`'s margins: one value (every side), two (vertical, horizontal) or
/// four (top, right, bottom, left), comma- or space-separated, optionally in
/// `<…>`; each a fraction of the source from 0 to 10.
pub fn parse_expand(text: &str) -> Result<[f64; 4], String> {
    let inner = text.trim().trim_start_matches('<').trim_end_matches('>');
    let values = inner
        .split([',', ' '])
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && (0.0..=10.0).contains(f))
                .ok_or_else(|| format!("expand `{text}`: `{v}` is not a fraction from 0 to 10"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    match values[..] {
        [all] => Ok([all; 4]),
        [vertical, horizontal] => Ok([vertical, horizontal, vertical, horizontal]),
        [top, right, bottom, left] => Ok([top, right, bottom, left]),
        _ => Err(format!(
            "expand `{text}` needs 1, 2 or 4 values (top, right, bottom, left), it has {}",
            values.len()
        )),
    }
}

/// The property specs of the element: the settings above, then `stats`.
pub static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
    let mut specs = setting_specs();
    specs.extend(gpu_properties::specs());
    specs.extend(security_properties::specs());
    specs.push(
        glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
            .nick("Statistics")
            .blurb("Counters of the running stream: frames-in, frames-out, frames-queued, windows-run, \
                    mean-window-time (ns, one 16-frame window), chunks-run, mean-chunk-time (ns, one lookahead \
                    chunk), provider (each distinct place a session set runs: cpu, cuda:N, tensorrt:N, \
                    remote:URLs, or none without a model), strides (the plan's stride list, e.g. 5,3,1; empty \
                    unless the model generates), transfer-bytes and transfer-bytes-per-window \
                    (bytes the U-Net calls copied between host memory and ONNX Runtime's: to and from the \
                    GPU on CUDA; on the CPU, what ONNX Runtime read from and the engine copied out of its buffers)")
            .read_only()
            .build(),
    );
    specs
});

/// The specs of the settings (not the GPU ones, not `stats`).
fn setting_specs() -> Vec<glib::ParamSpec> {
    vec![
        gst::ParamSpecFraction::builder("aspect")
            .nick("Aspect ratio")
            .blurb("Display aspect ratio (width/height) of the output, pixel-aspect-ratio taken into account; \
                    the source keeps its full resolution and the frame grows on the sides that this ratio needs")
            .minimum(gst::Fraction::new(1, limits::MAX_ASPECT_TERM as i32))
            .maximum(gst::Fraction::new(limits::MAX_ASPECT_TERM as i32, 1))
            .default_value(default_aspect())
            .mutable_ready()
            .build(),
        glib::ParamSpecEnum::builder_with_default("fill-mode", DEFAULT_FILL_MODE)
            .nick("Fill mode")
            .blurb("What fills the new area: outpaint (the M3DDM model, needs model-path; output lags the input \
                    by lookahead frames), blur or color (no model, frame by frame)")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("model-path")
            .nick("Model path")
            .blurb("Directory of an exported M3DDM model (manifest.json and the ONNX graphs written by \
                    m3ddm_export), or the name of one made by `make model`: m3ddm or m3ddm-plus (in \
                    $M3DDM_MODELS_DIR, else $XDG_DATA_HOME or ~/.local/share, under m3ddmoutpaint/models); \
                    required by fill-mode=outpaint")
            .mutable_ready()
            .build(),
        glib::ParamSpecEnum::builder_with_default("execution-provider", DEFAULT_EXECUTION_PROVIDER)
            .nick("Execution provider")
            .blurb("Where ONNX Runtime runs the model: auto (CUDA if it starts, else CPU), cuda (an error when \
                    no GPU can be used, never a silent CPU fallback), tensorrt (TensorRT with CUDA under it; an \
                    error naming what is missing) or cpu")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("device-id")
            .nick("Device IDs")
            .blurb("CUDA device(s) of execution-provider=cuda or auto, comma-separated (e.g. 0,1,2,3): one \
                    session set per device; after the stride-15 windows of a chunk, its independent windows \
                    run on every device at once (the same frames as on one device)")
            .default_value(Some("0"))
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("steps")
            .nick("Steps")
            .blurb("Denoising steps per 16-frame window (the official M3DDM uses 50; fewer is faster and rougher)")
            .minimum(limits::MIN_STEPS)
            .maximum(limits::MAX_STEPS)
            .default_value(limits::DEFAULT_STEPS)
            .mutable_ready()
            .build(),
        glib::ParamSpecEnum::builder_with_default("scheduler", DEFAULT_SCHEDULER)
            .nick("Scheduler")
            .blurb("Diffusion scheduler of the denoising loop (pndm is the official one)")
            .mutable_ready()
            .build(),
        glib::ParamSpecDouble::builder("guidance-scale")
            .nick("Guidance scale")
            .blurb("Classifier-free guidance scale of the masked-frame condition")
            .minimum(0.0)
            .maximum(limits::MAX_GUIDANCE_SCALE)
            .default_value(limits::DEFAULT_GUIDANCE_SCALE)
            .mutable_ready()
            .build(),
        glib::ParamSpecDouble::builder("global-guidance-scale")
            .nick("Global guidance scale")
            .blurb("Guidance scale of the global-frame context (values <= 1 turn the global guidance term off)")
            .minimum(0.0)
            .maximum(limits::MAX_GUIDANCE_SCALE)
            .default_value(limits::DEFAULT_GLOBAL_GUIDANCE_SCALE)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("lookahead")
            .nick("Lookahead")
            .blurb("Frames the model sees at once (one chunk of the streaming plan). The element holds up to this \
                    many input buffers (memory: about lookahead x frame size) and its latency is lookahead frames \
                    plus processing; 226 covers one stride-15 window of the official plan")
            .minimum(limits::MIN_LOOKAHEAD)
            .maximum(limits::MAX_LOOKAHEAD)
            .default_value(limits::DEFAULT_LOOKAHEAD)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt64::builder("seed")
            .nick("Seed")
            .blurb("Seed of the initial noise; the same seed, input and settings give the same output")
            .default_value(limits::DEFAULT_SEED)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("fill-color")
            .nick("Fill color")
            .blurb("Colour of the new area in fill-mode=color, as ARGB 0xAARRGGBB (the alpha byte is not used)")
            .default_value(limits::DEFAULT_FILL_COLOR)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("feather")
            .nick("Feather")
            .blurb("Width in output pixels of the blend from the source's edge into the generated area \
                    (the source itself is never changed); 0 = a hard seam")
            .minimum(0)
            .maximum(limits::MAX_FEATHER)
            .default_value(limits::DEFAULT_FEATHER)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("n-threads")
            .nick("Threads")
            .blurb("ONNX Runtime threads for the model's operators and threads of each video converter; \
                    0 = the process's shared ONNX Runtime pool, one thread per core, and for the converters \
                    the cores divided among the elements running in the process (element instances with \
                    the same model-path, provider, device and n-threads share one loaded model)")
            .maximum(limits::MAX_THREADS)
            .default_value(limits::DEFAULT_THREADS)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("expand")
            .nick("Expand")
            .blurb("Grow the frame by margins instead of to an aspect ratio: fractions of the source's \
                    size, \"0.25\" on every side, \"top,right,bottom,left\" or \"<0.1, 0.2, 0.1, 0.2>\" \
                    (two values: vertical, horizontal); cannot be set with aspect")
            .mutable_ready()
            .build(),
        glib::ParamSpecDouble::builder("scene-threshold")
            .nick("Scene threshold")
            .blurb("Scene-cut sensitivity (0-1; 0 = off): a frame whose change from the one before scores \
                    above it starts a new shot, with a plan and global frames of its own; each cut is \
                    counted in stats and posted as an m3ddmoutpaint-scene-cut element message; 0.08 finds \
                    the cuts of edited footage and none in continuous shots (README, Scene cuts)")
            .minimum(0.0)
            .maximum(1.0)
            .default_value(0.0)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt64::builder("max-latency")
            .nick("Maximum latency")
            .blurb("The longest a frame may stay in the element, in nanoseconds: a frame whose generated \
                    area is not ready by then leaves on time with the blur fill (counted in stats, announced \
                    by a warning once per episode), and generation resumes when it catches up; the latency \
                    query answers it. 0 = unbounded; in a live pipeline, frames that downstream reports late \
                    (QoS) leave with the blur fill the same way")
            .default_value(0)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("stall-timeout")
            .nick("Stall timeout")
            .blurb("Milliseconds the element waits, holding frames for a chunk, with no frame arriving and \
                    none leaving: then it posts one warning (another branch of the pipeline is full: give its \
                    queues at least lookahead / framerate, or lower lookahead) and runs the frames it holds \
                    as a chunk, as at EOS, so that the pipeline moves on. 0 = wait as long as it takes")
            .default_value(DEFAULT_STALL_TIMEOUT_MS)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("inference-server")
            .nick("Inference server")
            .blurb("Run the model on Open Inference Protocol (KServe V2) servers instead of in this process: \
                    comma-separated grpc://host:port URLs (grpcs://host:port for TLS: inference-tls-*), each serving the model's Triton repository \
                    (python -m m3ddm_export triton-repo); one denoiser per server, each call to the least busy \
                    server that answers; model-path still names the model directory, whose manifest the servers must match")
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("inference-timeout")
            .nick("Inference timeout")
            .blurb("Deadline in milliseconds of one model call to the inference servers, retries included; \
                    past it the element posts an error naming the server")
            .minimum(limits::MIN_INFERENCE_TIMEOUT_MS)
            .maximum(limits::MAX_INFERENCE_TIMEOUT_MS)
            .default_value(limits::DEFAULT_INFERENCE_TIMEOUT_MS)
            .mutable_ready()
            .build(),
    ]
    .into_iter()
    .chain(super::plan_properties::plan_properties())
    .collect()
}

#[cfg(test)]
mod tests;
