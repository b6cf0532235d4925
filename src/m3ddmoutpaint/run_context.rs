// SPDX-License-Identifier: MPL-2.0
//! What one READY→PAUSED start runs with (`RunContext`: the settings, the
//! model, a plan) and what follows from it alone: the frames held, the memory
//! they need, the stall timeout, the latency and its chunk estimate, the
//! video converters' threads (the cores shared among the running elements).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::FillMode;
use super::settings::Settings;
use crate::engine::limits::{self, FALLBACK_FPS};
use crate::engine::planner::Strides;
use crate::engine::twopass::ShotPlans;
use crate::engine::{self, EngineError, Model};

/// Frames the flat fills let the sink side queue ahead of the output.
const FLAT_QUEUE_FRAMES: usize = 4;

/// Elements of this process between READY→PAUSED and PAUSED→READY (they
/// share the cores for their video converters).
static RUNNING_ELEMENTS: AtomicUsize = AtomicUsize::new(0);

/// Counts a started run among the running elements while it lives.
pub struct RunningElement(());

impl RunningElement {
    pub fn new() -> RunningElement {
        RUNNING_ELEMENTS.fetch_add(1, Ordering::Relaxed);
        RunningElement(())
    }
}

impl Drop for RunningElement {
    fn drop(&mut self) {
        RUNNING_ELEMENTS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one READY→PAUSED start runs with: the settings then, and the model
/// (one per device; none when the fill needs no model).
pub struct RunContext {
    pub settings: Settings,
    pub models: Vec<Arc<Model>>,
    /// The keyframe plan of `plan-file` (checked at READY), if set.
    pub plan: Option<Arc<ShotPlans>>,
    /// The plan's strides: `strides`, else the model's default.
    pub strides: Strides,
    /// A chunk's processing time estimated at READY (`engine::calibration`),
    /// the latency's share until a chunk has been measured.
    pub chunk_estimate: Option<Duration>,
}

impl RunContext {
    /// The strides a run uses: `strides` (checked), else the first model's
    /// default, else the official ones.
    pub fn strides_for(settings: &Settings, models: &[Arc<Model>]) -> Result<Strides, String> {
        Ok(settings.stride_list()?.unwrap_or_else(|| {
            models
                .first()
                .map_or_else(Strides::official, |model| model.manifest().strides.clone())
        }))
    }

    /// The canvas the fill back-end works on.
    pub fn canvas(&self) -> u32 {
        self.models
            .first()
            .map_or(crate::engine::limits::FLAT_CANVAS, |model| model.canvas())
    }

    /// Whether scene cuts are looked for (`scene-threshold` above 0; READY
    /// refuses it with a plan, which has its shots already).
    pub fn detects_cuts(&self) -> bool {
        self.settings.scene_threshold > 0.0
    }

    /// Threads of each video converter (scaling in, composing out): `n-threads`
    /// when set, else the cores shared among the elements running in this
    /// process, so that many streams do not each take one thread per core.
    pub fn converter_threads(&self) -> u32 {
        match self.settings.n_threads {
            0 => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                let running = RUNNING_ELEMENTS.load(Ordering::Relaxed).max(1);
                (cores / running).max(1) as u32
            }
            threads => threads,
        }
    }

    /// Whether frames go through the model (and wait for a chunk).
    pub fn generates(&self) -> bool {
        self.settings.fill_mode == FillMode::Outpaint && !self.models.is_empty()
    }

    /// Frames held at most (queued, in the generator or waiting to be pushed)
    /// before the chain blocks.
    pub fn max_held(&self) -> usize {
        if self.generates() {
            self.generated_hold()
        } else {
            FLAT_QUEUE_FRAMES
        }
    }

    /// How long held frames wait with nothing arriving or leaving before they
    /// run as a chunk (`stall-timeout`): only for the chunked run of the
    /// lookahead (the passes of a plan need their frames as planned).
    pub fn stall_timeout(&self) -> Option<Duration> {
        let settings = &self.settings;
        let planned = self.plan.is_some() || settings.write_plan.is_some();
        (self.generates() && !planned && settings.stall_timeout > 0)
            .then(|| Duration::from_millis(settings.stall_timeout.into()))
    }

    /// Frames a generating run holds: the lookahead, or with a plan the
    /// frames its streaming pass holds at most (one more, so that the frame
    /// that completes a stride-5 window always gets in).
    fn generated_hold(&self) -> usize {
        match &self.plan {
            Some(plan) => plan.streaming_hold() + 1,
            None => self.settings.lookahead as usize,
        }
    }

    /// Refuses a `lookahead` (or a plan's hold) whose held frames (of
    /// `source_frame_bytes` each; 0 before the caps) would not fit in the
    /// memory available now.
    pub fn check_memory(&self, source_frame_bytes: usize) -> Result<(), String> {
        let Some(available) = limits::available_memory() else {
            return Ok(());
        };
        if !self.generates() {
            return Ok(());
        }
        limits::check_held_memory(
            self.generated_hold() as u32,
            self.canvas(),
            source_frame_bytes as u64,
            available,
        )
        .map_err(|err| match err {
            EngineError::InvalidInput(sentence) => sentence,
            other => other.to_string(),
        })
    }

    /// Each distinct place a session set runs (`cpu`, `cuda:0,cuda:1`), or `none` without a model.
    pub fn provider(&self) -> String {
        if self.models.is_empty() {
            return "none".to_owned();
        }
        let mut labels: Vec<String> = Vec::new();
        for label in self.models.iter().map(|model| model.placement().label()) {
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
        labels.join(",")
    }

    /// Own latency: the frames held (the lookahead, or a plan's hold) at the
    /// stream's framerate plus the processing time of a chunk (the estimate
    /// made at READY until one has run).
    pub fn latency(&self, fps: Option<f64>, mean_chunk_time: Duration) -> gst::ClockTime {
        if !self.generates() {
            return gst::ClockTime::ZERO;
        }
        let lookahead = self.generated_hold() as f64 / fps.unwrap_or(FALLBACK_FPS);
        let chunk = match mean_chunk_time {
            Duration::ZERO => self.chunk_estimate.unwrap_or_default(),
            measured => measured,
        };
        gst::ClockTime::from_nseconds((lookahead * 1e9) as u64 + chunk.as_nanos() as u64)
    }

    /// Estimates a chunk's processing time from the window cost measured on
    /// the model (once per model in the process); `None` without a model, with
    /// a plan, on inference servers (their time follows their load: the first chunk
    /// measures it) or when the measurement fails (then the latency has no
    /// chunk share until one has run).
    pub fn estimate_chunk(&self) -> Result<Option<Duration>, EngineError> {
        let in_process = |model: &&Arc<Model>| model.provider_in_use() != "remote";
        let Some(model) = self.models.first().filter(in_process) else {
            return Ok(None);
        };
        // The passes of a plan run window by window as frames arrive (file passes, not live).
        let planned = self.plan.is_some() || self.settings.write_plan.is_some();
        if !self.generates() || planned {
            return Ok(None);
        }
        let params = self.settings.denoise_params();
        let cost = engine::calibration::window_cost(model, &params)?;
        Ok(Some(cost.chunk(
            self.generated_hold(),
            params.steps,
            &self.strides,
        )))
    }
}
