// SPDX-License-Identifier: MPL-2.0
//! The official whole-clip plan at any length in bounded memory, in two steps
//! (DESIGN.md §3): a **keyframe pass** (`keyframes.rs`) runs the plan's
//! windows of its first stride (15 in the official 15, 5, 1) over the 16
//! global frames and one frame in 15, and gives a [`KeyframePlan`] (written to
//! a file by `file.rs`, with the strides it was made with); the **streaming
//! pass** (`streaming.rs`) then runs only the finer strides' windows (5 and 1),
//! frames in order, with the keyframe latents as known guides and the plan's
//! global context, holding only the frames a window of the second stride spans.
//!
//! With scene cuts (`shots.rs`), each shot is a clip of its own: a plan per
//! shot, the shots streamed one after the other.
//!
//! Both steps run the windows of the official plan of the whole clip, with the
//! guides and kept latents that plan gives them, through `clip::run_clip`; a
//! window's result depends only on its frames, guides, context, noise and fps,
//! so the two steps give exactly what the whole-clip run gives.

mod file;
mod keyframes;
mod latents;
mod shots;
mod streaming;
#[cfg(test)]
mod stride_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use super::error::{EngineError, Result};
use super::geometry::CanvasLayout;
use super::manifest::Manifest;
use super::planner::{ClipPlan, Strides, plan_clip};
use super::window::DenoiseParams;

pub use file::{PLAN_FORMAT_VERSION, read_plan, write_plan};
pub use keyframes::{KeyframeFrames, run_keyframe_pass};
pub use latents::PlanLatents;
pub use shots::{ShotKeyframes, ShotPlans, ShotStream, shot_lengths};
pub use streaming::{PlannedStream, Produced};

/// What the keyframe pass produced, all the streaming pass needs besides the frames.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyframePlan {
    pub total_frames: usize,
    pub fps: f64,
    pub layout: CanvasLayout,
    /// Steps, scheduler, guidance scales and seed of the run.
    pub params: DenoiseParams,
    /// The model it was made with ([`model_identity`]).
    pub model_identity: String,
    /// The coarse-to-fine strides of its plan (the keyframe pass ran the first).
    pub strides: Strides,
    /// The scaled latents `[16,4,C/8,C/8]` of the 16 global frames and, per
    /// keyframe (a frame whose latent the keyframe pass produced), its scaled
    /// latent `[4,C/8,C/8]`.
    pub latents: PlanLatents,
}

impl KeyframePlan {
    /// Checks the plan against a stream: its layout and frame rate.
    pub fn check_stream(&self, layout: &CanvasLayout, fps: f64) -> Result<()> {
        if *layout != self.layout {
            return Err(EngineError::InvalidInput(format!(
                "the plan is for a {} canvas with the content at {:?}, the stream gives a {} canvas with the content at {:?}",
                self.layout.canvas, self.layout.content, layout.canvas, layout.content
            )));
        }
        let same_rate = (fps - self.fps).abs() <= 1e-6 * self.fps.abs().max(1.0)
            || (fps.is_nan() && self.fps.is_nan());
        if !same_rate {
            return Err(EngineError::InvalidInput(format!(
                "the plan is for {} frames/s, the stream has {fps}",
                self.fps
            )));
        }
        Ok(())
    }

    /// The most frames the streaming pass of this plan holds at once.
    pub fn streaming_hold(&self) -> usize {
        PassSplit::new(self.total_frames, &self.strides)
            .map_or(self.total_frames, |s| s.streaming_hold())
    }

    /// Checks that the plan was made with the model whose manifest is `manifest`.
    pub fn check_model(&self, manifest: &Manifest) -> Result<()> {
        let loaded = model_identity(manifest);
        if loaded != self.model_identity {
            return Err(EngineError::InvalidInput(format!(
                "the plan was made with model {}, the loaded model is {loaded}",
                self.model_identity
            )));
        }
        Ok(())
    }

    /// The values of one latent of the plan's canvas, `4·(C/8)²`.
    pub fn latent_len(&self) -> usize {
        let side = (self.layout.canvas / crate::engine::limits::LATENT_FACTOR) as usize;
        crate::engine::window::LATENT_CHANNELS * side * side
    }

    /// Checks the plan's structure: the keyframes of the plan of its frame
    /// count at its strides, latents of the canvas's size.
    pub fn check_shape(&self) -> Result<()> {
        if self.strides.keyframe_stride().is_none() {
            return Err(EngineError::InvalidInput(format!(
                "a plan at strides {} has no keyframe pass: a plan needs two or more strides \
                 (its keyframe pass runs the first)",
                self.strides
            )));
        }
        let split = PassSplit::new(self.total_frames, &self.strides)?;
        let latent_len = self.latent_len();
        let bad = |s: String| Err(EngineError::InvalidInput(s));
        let expected = split.keyframes();
        let ours: BTreeSet<usize> = self.latents.keyframes().iter().copied().collect();
        if ours != expected {
            return bad(format!(
                "the plan's {} keyframes are not those of a clip of {} frames ({} keyframes)",
                ours.len(),
                self.total_frames,
                expected.len()
            ));
        }
        if let Err(why) = self.latents.check_lengths(latent_len) {
            return bad(format!(
                "{why}: the plan's latents do not fit a {} canvas ({latent_len} values each)",
                self.layout.canvas
            ));
        }
        Ok(())
    }
}

/// The identity of a model: the sha256 of its precision and of the recorded
/// sha256 of each of its graph files (and their external data).
pub fn model_identity(manifest: &Manifest) -> String {
    let mut hasher = Sha256::new();
    hasher.update(manifest.precision.as_bytes());
    for graph in &manifest.graphs {
        for file in graph.files() {
            hasher.update(b"\n");
            hasher.update(file.sha256.as_bytes());
        }
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The plan of a clip at a stride list, split into the two passes.
#[derive(Debug, Clone)]
pub struct PassSplit {
    pub plan: ClipPlan,
    /// The windows of the first stride (none under 50 frames or with one
    /// stride), in plan order.
    pub keyframe_windows: Vec<usize>,
    /// Every other window, in plan order.
    pub streaming_windows: Vec<usize>,
}

impl PassSplit {
    pub fn new(total_frames: usize, strides: &Strides) -> Result<PassSplit> {
        let plan = plan_clip(total_frames, false, strides)?;
        let keyframe_stride = strides.keyframe_stride();
        let (keyframe_windows, streaming_windows): (Vec<usize>, Vec<usize>) =
            (0..plan.windows.len()).partition(|&w| Some(plan.windows[w].stride) == keyframe_stride);
        let split = PassSplit {
            plan,
            keyframe_windows,
            streaming_windows,
        };
        // A plan decodes every frame's image from a finer window (its last stride is 1).
        let in_keyframe_pass = split.in_keyframe_pass();
        if let Some(f) = split
            .plan
            .image_source
            .iter()
            .position(|s| in_keyframe_pass[s.window])
        {
            return Err(EngineError::Inference(format!(
                "frame {f}'s image would come from the keyframe pass"
            )));
        }
        Ok(split)
    }

    /// Per window of the plan, whether the keyframe pass runs it (a lookup
    /// table, so that long clips are not scanned once per frame).
    fn in_keyframe_pass(&self) -> Vec<bool> {
        let mut table = vec![false; self.plan.windows.len()];
        for &w in &self.keyframe_windows {
            table[w] = true;
        }
        table
    }

    /// The frames whose latent the keyframe pass produces.
    pub fn keyframes(&self) -> BTreeSet<usize> {
        let in_keyframe_pass = self.in_keyframe_pass();
        self.plan
            .latent_source
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some_and(|s| in_keyframe_pass[s.window]))
            .map(|(f, _)| f)
            .collect()
    }

    /// The frames the keyframe pass reads: those its windows hold (their
    /// init and masked images) and the 16 global frames (their stretched image).
    pub fn keyframe_pass_frames(&self) -> BTreeSet<usize> {
        self.keyframe_windows
            .iter()
            .flat_map(|&w| self.plan.windows[w].frames)
            .chain(self.plan.global_frames)
            .collect()
    }

    /// The most frames the streaming pass holds at once: a frame arrives, waits
    /// for the windows that give its image (and for the windows that give their
    /// guides), then for the frames before it to leave.
    pub fn streaming_hold(&self) -> usize {
        let plan = &self.plan;
        // Per window, the frame whose arrival lets it run.
        let mut ready_at = vec![0usize; plan.windows.len()];
        for &w in &self.streaming_windows {
            let win = &plan.windows[w];
            let mut at = win.frames.iter().copied().max().unwrap_or(0);
            for (p, &f) in win.frames.iter().enumerate() {
                if let (true, Some(src)) = (win.guides[p], plan.latent_source[f]) {
                    at = at.max(ready_at[src.window]);
                }
            }
            ready_at[w] = at;
        }
        let mut leaves_at = 0;
        let mut hold = 1;
        for (f, source) in plan.image_source.iter().enumerate() {
            leaves_at = leaves_at.max(ready_at[source.window]);
            hold = hold.max(leaves_at + 1 - f);
        }
        hold
    }
}
