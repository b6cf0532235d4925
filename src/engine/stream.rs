// SPDX-License-Identifier: MPL-2.0
//! `StreamOutpainter` (API stub; owner: runtime): frames in, generated canvases
//! out in order, chunk by chunk over a bounded lookahead.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::error::{EngineError, Result};
use super::geometry::CanvasLayout;
use super::model::Model;
use super::pixels::RgbImage;
use super::scheduler::SchedulerKind;

/// ONNX Runtime execution provider choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutionProvider {
    #[default]
    Auto,
    Cuda,
    Cpu,
}

/// Denoising parameters of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct DenoiseParams {
    pub steps: u32,
    pub scheduler: SchedulerKind,
    pub guidance_scale: f32,
    pub global_guidance_scale: f32,
    pub seed: u64,
}

impl Default for DenoiseParams {
    fn default() -> Self {
        DenoiseParams { steps: 50, scheduler: SchedulerKind::Pndm, guidance_scale: 2.0, global_guidance_scale: 4.0, seed: 0 }
    }
}

/// How to load a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOptions {
    pub model_dir: PathBuf,
    pub provider: ExecutionProvider,
    pub device_id: i32,
}

pub struct StreamOutpainter {
    _model: Arc<Model>,
}

impl StreamOutpainter {
    /// `fps` is the stream's frame rate (the UNet's fps input is floor(fps / stride)).
    pub fn new(model: Arc<Model>, _params: DenoiseParams, _layout: CanvasLayout, _fps: f64, _lookahead: usize) -> Result<Self> {
        Ok(StreamOutpainter { _model: model })
    }
    /// Queues one frame: the source scaled to `layout.content` (packed RGB). Cheap.
    pub fn push(&mut self, _content: RgbImage) -> Result<()> {
        Err(EngineError::Inference("StreamOutpainter not implemented yet".into()))
    }
    /// True when a full chunk (lookahead frames) is queued.
    pub fn chunk_ready(&self) -> bool {
        false
    }
    /// Frames queued and not yet returned.
    pub fn pending(&self) -> usize {
        0
    }
    /// Runs the next chunk (blocking) and returns its generated canvases, one per
    /// frame, oldest first. With `draining`, runs whatever is queued (EOS).
    /// Checks `cancel` between denoising steps and returns `Cancelled`.
    pub fn run_next(&mut self, _draining: bool, _cancel: &AtomicBool) -> Result<Vec<RgbImage>> {
        Err(EngineError::Inference("StreamOutpainter not implemented yet".into()))
    }
    /// Drops every queued frame and all carried state (flush).
    pub fn reset(&mut self) {}
}
