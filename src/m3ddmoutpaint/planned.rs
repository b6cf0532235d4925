// SPDX-License-Identifier: MPL-2.0
//! The two passes in the element. `write-plan` + `plan-frames` (pass 1): the
//! element collects the frames the keyframe pass reads, runs it when the
//! stream's last frame arrives and writes the plan (its own output then is a
//! flat fill, not meant to be kept). `plan-file` (pass 2): the plan, read and
//! checked at READY (its version, the loaded model, the denoising
//! properties), and the engine's streaming pass as the run's fill back-end.
//! Every mismatch with the stream (layout or framerate at caps, frame count
//! when exceeded or at EOS) is an error naming it; nothing falls back to the
//! chunked run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use super::FillMode;
use super::fill::{CanvasSource, FlatFill, FlatKind};
use super::run_context::RunContext;
use super::settings::Settings;
use crate::engine::pixels;
use crate::engine::planner::Strides;
use crate::engine::stream::StreamStats;
use crate::engine::twopass::{
    KeyframeFrames, KeyframePlan, ShotKeyframes, ShotPlans, ShotStream, read_plan,
    run_keyframe_pass, shot_lengths, write_plan,
};
use crate::engine::window::{Denoiser, window_noise};
use crate::engine::{self, CanvasLayout, DenoiseParams, EngineError, Model, RgbImage};

/// The plan named by `plan-file`, checked against the settings, the
/// run's `strides` and the loaded models; `None` without `plan-file`.
/// Errors are sentences naming the property and the mismatch.
pub fn load_plan(
    settings: &Settings,
    models: &[Arc<Model>],
    strides: &Strides,
) -> Result<Option<Arc<ShotPlans>>, String> {
    let reading = settings.plan_file.as_deref().filter(|p| !p.is_empty());
    let writing = write_target(settings);
    let property = match (reading, &writing) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => return Err("plan-file and write-plan cannot both be set".into()),
        (Some(_), None) => "plan-file",
        (None, Some(_)) => "write-plan",
    };
    if settings.fill_mode != FillMode::Outpaint || models.is_empty() {
        return Err(format!("{property} needs fill-mode=outpaint and a model"));
    }
    if settings.scene_threshold > 0.0 {
        return Err(format!(
            "{property} and scene-threshold cannot be combined: a plan has its shots already (set scene-threshold to 0; write-plan takes the cuts in plan-cuts)"
        ));
    }
    if settings.max_latency > 0 {
        return Err(format!(
            "{property} and max-latency cannot be combined: a planned run makes every frame (set max-latency to 0)"
        ));
    }
    if strides.keyframe_stride().is_none() {
        return Err(format!(
            "{property} needs two or more strides (the keyframe pass runs the first): strides={strides} has no keyframe pass"
        ));
    }
    let Some(path) = reading else {
        if settings.plan_frames == 0 {
            return Err("write-plan needs plan-frames, the stream's frame count".into());
        }
        let cuts = plan_cuts(settings).map_err(|e| bare(&e))?;
        shot_lengths(settings.plan_frames as usize, &cuts)
            .map_err(|e| format!("plan-cuts with plan-frames: {}", bare(&e)))?;
        return Ok(None);
    };
    let plan = read_plan(Path::new(path)).map_err(|e| format!("plan-file {e}"))?;
    for model in models {
        plan.check_model(model.manifest())
            .map_err(|e| format!("plan-file {path}: {}", bare(&e)))?;
    }
    let ours = settings.denoise_params();
    let theirs = plan.params();
    let differences: Vec<String> = [
        ("steps", ours.steps.to_string(), theirs.steps.to_string()),
        (
            "scheduler",
            ours.scheduler.name().into(),
            theirs.scheduler.name().into(),
        ),
        (
            "guidance-scale",
            ours.guidance_scale.to_string(),
            theirs.guidance_scale.to_string(),
        ),
        (
            "global-guidance-scale",
            ours.global_guidance_scale.to_string(),
            theirs.global_guidance_scale.to_string(),
        ),
        ("seed", ours.seed.to_string(), theirs.seed.to_string()),
        ("strides", strides.to_string(), plan.strides().to_string()),
    ]
    .into_iter()
    .filter(|(_, a, b)| a != b)
    .map(|(name, a, b)| format!("{name} is {a}, the plan's is {b}"))
    .collect();
    if !differences.is_empty() {
        return Err(format!(
            "plan-file {path} was made with other settings: {}",
            differences.join("; ")
        ));
    }
    Ok(Some(Arc::new(plan)))
}

/// An engine error's sentence without its kind.
fn bare(err: &EngineError) -> String {
    match err {
        EngineError::InvalidInput(s)
        | EngineError::Model(s)
        | EngineError::Runtime(s)
        | EngineError::Inference(s) => s.clone(),
        EngineError::Cancelled => "cancelled".into(),
    }
}

/// The streaming pass of a plan, for a stream of `layout` at `fps`.
pub fn planned_source(
    plan: &Arc<ShotPlans>,
    models: &[Arc<Model>],
    layout: &CanvasLayout,
    fps: f64,
) -> engine::Result<Box<dyn CanvasSource>> {
    plan.check_stream(layout, fps)?;
    Ok(Box::new(PlannedSource {
        stream: ShotStream::new(models, Arc::clone(plan))?,
        flushed_mid_stream: false,
    }))
}

/// The streaming pass behind the element's back-end interface.
struct PlannedSource {
    stream: ShotStream,
    /// A flush after frames went through: the next frame's place in the plan
    /// is unknown, so the run cannot go on.
    flushed_mid_stream: bool,
}

impl CanvasSource for PlannedSource {
    /// The plan has its shots: no cut is looked for (READY refuses scene-threshold).
    fn push(&mut self, content: Arc<RgbImage>, _starts_shot: bool) -> engine::Result<()> {
        if self.flushed_mid_stream {
            return Err(EngineError::InvalidInput(
                "a flush (seek) in the middle of a planned stream: the frames' places in the plan are lost".into(),
            ));
        }
        self.stream.push(content)
    }
    fn chunk_ready(&self) -> bool {
        self.stream.chunk_ready()
    }
    fn run_next(
        &mut self,
        draining: bool,
        cancel: &engine::Cancel,
    ) -> engine::Result<Vec<RgbImage>> {
        self.stream.run_next(draining, cancel)
    }
    fn reset(&mut self) {
        self.flushed_mid_stream |= self.stream.pushed() > 0;
        if self.stream.reset().is_err() {
            // Cannot happen: the first shot's stream was made before with the same models.
            self.flushed_mid_stream = true;
        }
    }
    fn drop_oldest(&mut self, _count: usize) {
        // Deadlines are off with a plan (`load_plan` refuses max-latency).
    }
    fn cost_of(&self, _frames: usize) -> Option<Duration> {
        None
    }
    fn runs_model(&self) -> bool {
        true
    }
    fn windows_done(&self) -> Option<Arc<AtomicU64>> {
        Some(self.stream.windows_done())
    }
    fn window_stats(&self) -> Option<&StreamStats> {
        Some(self.stream.stats())
    }
}

/// Where `write-plan` writes, when set.
fn write_target(settings: &Settings) -> Option<PathBuf> {
    settings
        .write_plan
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// The keyframe pass's back-end for `write-plan`, when set (checked at READY).
pub fn keyframe_source(
    run: &RunContext,
    layout: &CanvasLayout,
    fps: f64,
) -> engine::Result<Option<Box<dyn CanvasSource>>> {
    let settings = &run.settings;
    let Some(path) = write_target(settings) else {
        return Ok(None);
    };
    let total = settings.plan_frames as usize;
    let cuts = plan_cuts(settings)?;
    Ok(Some(Box::new(KeyframeSource {
        shots: Some(ShotKeyframes::new(
            *layout,
            total,
            &cuts,
            run.strides.clone(),
        )?),
        pushed: 0,
        total,
        flat: FlatFill::new(*layout, FlatKind::Color([0, 0, 0])),
        strides: run.strides.clone(),
        models: run.models.to_vec(),
        params: settings.denoise_params(),
        layout: *layout,
        fps,
        path,
        flushed_mid_stream: false,
    })))
}

/// `plan-cuts`: the first frame of each shot after the first.
fn plan_cuts(settings: &Settings) -> engine::Result<Vec<usize>> {
    let text = settings.plan_cuts.as_deref().unwrap_or("");
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse().map_err(|_| {
                EngineError::InvalidInput(format!(
                    "plan-cuts `{text}` is not a list of frame numbers separated by commas"
                ))
            })
        })
        .collect()
}

/// `write-plan`: collects the frames of the keyframe pass shot by shot, runs
/// each shot's pass at its last frame and writes the plan at the stream's
/// last frame; each frame's canvas is flat.
struct KeyframeSource {
    /// `None` once the plan is written.
    shots: Option<ShotKeyframes>,
    pushed: usize,
    total: usize,
    flat: FlatFill,
    strides: Strides,
    models: Vec<Arc<Model>>,
    params: DenoiseParams,
    layout: CanvasLayout,
    fps: f64,
    path: PathBuf,
    flushed_mid_stream: bool,
}

impl KeyframeSource {
    /// Offers a frame; runs a shot's pass at its last frame, and writes the plan at the stream's.
    fn offer(&mut self, content: Arc<RgbImage>) -> engine::Result<()> {
        let Some(shots) = self.shots.as_mut() else {
            return Ok(());
        };
        let mut workers = Vec::new();
        let mut run_shot = |frames: &KeyframeFrames| -> engine::Result<KeyframePlan> {
            if workers.is_empty() {
                workers = self
                    .models
                    .iter()
                    .map(|model| Denoiser::new(model.clone(), &self.params))
                    .collect::<engine::Result<Vec<_>>>()?;
            }
            run_keyframe_pass(
                &mut workers,
                frames,
                &self.layout,
                &pixels::mask(&self.layout),
                &window_noise(self.params.seed, self.layout.canvas),
                (self.fps, &self.params, &self.strides),
                &engine::Cancel::new(),
            )
        };
        shots.offer(content, &mut run_shot)?;
        if self.pushed == self.total
            && let Some(shots) = self.shots.take()
        {
            write_plan(&self.path, &shots.finish()?)?;
        }
        Ok(())
    }
}

impl CanvasSource for KeyframeSource {
    fn push(&mut self, content: Arc<RgbImage>, starts_shot: bool) -> engine::Result<()> {
        if self.flushed_mid_stream {
            return Err(EngineError::InvalidInput(
                "a flush (seek) in the middle of the keyframe pass: the frames' places are lost"
                    .into(),
            ));
        }
        if self.pushed >= self.total {
            return Err(EngineError::InvalidInput(format!(
                "the stream has more frames than plan-frames ({})",
                self.total
            )));
        }
        self.pushed += 1;
        self.offer(content.clone())?;
        self.flat.push(content, starts_shot)
    }
    fn chunk_ready(&self) -> bool {
        self.flat.chunk_ready()
    }
    fn run_next(
        &mut self,
        draining: bool,
        cancel: &engine::Cancel,
    ) -> engine::Result<Vec<RgbImage>> {
        self.flat.run_next(draining, cancel)
    }
    fn reset(&mut self) {
        self.flushed_mid_stream |= self.pushed > 0;
        self.flat.reset();
    }
    fn drop_oldest(&mut self, count: usize) {
        self.flat.drop_oldest(count)
    }
    fn cost_of(&self, frames: usize) -> Option<Duration> {
        self.flat.cost_of(frames)
    }
    fn runs_model(&self) -> bool {
        false
    }
    fn windows_done(&self) -> Option<Arc<AtomicU64>> {
        None
    }
    fn window_stats(&self) -> Option<&StreamStats> {
        None
    }
}
