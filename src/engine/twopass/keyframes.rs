// SPDX-License-Identifier: MPL-2.0
//! The keyframe pass: the windows of the first stride (15 in the official
//! 15, 5, 1) of the plan of the whole clip, over the frames they hold and the
//! 16 global frames (at `linspace` positions over the real frame count),
//! giving a [`KeyframePlan`] that records the strides.
//! [`KeyframeFrames`] collects just those frames from a file read in order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{KeyframePlan, PassSplit, PlanLatents, model_identity};
use crate::engine::cancel::Cancel;
use crate::engine::clip::{self, ClipFrames, ClipInput, FrameImage};
use crate::engine::error::{EngineError, Result};
use crate::engine::geometry::CanvasLayout;
use crate::engine::pixels::{self, RgbImage};
use crate::engine::planner::Strides;
use crate::engine::window::{DenoiseParams, Denoiser, WindowConstants};

/// Runs the keyframe pass of a clip of `frames.len()` frames. `frames` needs
/// to give only the frames of [`PassSplit::keyframe_pass_frames`]; `mask` is
/// the layout's pixel mask `[C*C]`, `noise` every window's starting noise.
/// `params`, `fps` and `strides` are recorded in the plan (the workers run
/// with their own `params`).
#[allow(clippy::too_many_arguments)]
pub fn run_keyframe_pass(
    workers: &mut [Denoiser],
    frames: &dyn ClipFrames,
    layout: &CanvasLayout,
    mask: &[f32],
    noise: &[f32],
    (fps, params, strides): (f64, &DenoiseParams, &Strides),
    cancel: &Cancel,
) -> Result<KeyframePlan> {
    let total_frames = frames.len();
    let split = PassSplit::new(total_frames, strides)?;
    let model = workers
        .first()
        .ok_or_else(|| EngineError::InvalidInput("the keyframe pass needs a worker".into()))?
        .model()
        .clone();
    let constants = WindowConstants::new(&model, layout.canvas as usize, mask, cancel)?;
    let global_latents = clip::global_latents(&model, &constants, &split.plan, frames, cancel)?;
    let context = crate::engine::window::GuidanceContext::from_latents(
        &model,
        &constants,
        &global_latents,
        cancel,
    )?;
    let input = ClipInput {
        plan: &split.plan,
        windows: &split.keyframe_windows,
        frames,
        constants: &constants,
        context: &context,
        noise,
        fps,
        windows_done: None,
    };
    let mut no_images = |frame: usize, _: &[f32]| -> Result<()> {
        Err(EngineError::Inference(format!(
            "the keyframe pass gave frame {frame}'s image"
        )))
    };
    let output = clip::run_clip(
        workers,
        &input,
        vec![None; total_frames],
        &mut no_images,
        cancel,
    )?;
    let mut keyframes = BTreeMap::new();
    for f in split.keyframes() {
        let latent = output.latents[f].clone().ok_or_else(|| {
            EngineError::Inference(format!("the keyframe pass left frame {f} without a latent"))
        })?;
        keyframes.insert(f, latent);
    }
    Ok(KeyframePlan {
        total_frames,
        fps,
        layout: *layout,
        params: params.clone(),
        model_identity: model_identity(model.manifest()),
        strides: strides.clone(),
        latents: PlanLatents::held(global_latents, keyframes),
    })
}

/// The frames the keyframe pass reads, collected from a clip read in order:
/// each frame's content (the source scaled to the layout's content box) is
/// kept only when the pass reads it; its canvas images are made when read.
pub struct KeyframeFrames {
    layout: CanvasLayout,
    total_frames: usize,
    wanted: BTreeSet<usize>,
    held: BTreeMap<usize, Arc<RgbImage>>,
}

impl KeyframeFrames {
    /// Collects the frames of a clip of `total_frames` frames planned at `strides`.
    pub fn new(
        layout: CanvasLayout,
        total_frames: usize,
        strides: &Strides,
    ) -> Result<KeyframeFrames> {
        let wanted = PassSplit::new(total_frames, strides)?.keyframe_pass_frames();
        Ok(KeyframeFrames {
            layout,
            total_frames,
            wanted,
            held: BTreeMap::new(),
        })
    }

    /// Whether the pass reads frame `index` (a caller may skip the others).
    pub fn wants(&self, index: usize) -> bool {
        self.wanted.contains(&index)
    }

    /// Frame `index`'s content; kept when the pass reads it.
    pub fn offer(&mut self, index: usize, content: impl Into<Arc<RgbImage>>) -> Result<()> {
        if index >= self.total_frames {
            return Err(EngineError::InvalidInput(format!(
                "frame {index} is past the {} frames the plan is made for",
                self.total_frames
            )));
        }
        if self.wants(index) {
            self.held.insert(index, content.into());
        }
        Ok(())
    }

    /// The frames the pass reads that were not offered, if any.
    pub fn missing(&self) -> Option<usize> {
        self.wanted
            .iter()
            .copied()
            .find(|f| !self.held.contains_key(f))
    }
}

impl ClipFrames for KeyframeFrames {
    fn len(&self) -> usize {
        self.total_frames
    }

    fn write(&self, frame: usize, image: FrameImage, out: &mut [f32]) -> Result<()> {
        let content = self.held.get(&frame).ok_or_else(|| {
            EngineError::InvalidInput(format!("frame {frame} was not given to the keyframe pass"))
        })?;
        let inputs = pixels::canvas_inputs(content, &self.layout);
        clip::write_inputs(&inputs, image, self.layout.canvas, out)
    }
}
