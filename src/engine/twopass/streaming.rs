// SPDX-License-Identifier: MPL-2.0
//! The streaming pass: frames in, in order; the windows of the finer strides
//! (5 and 1 of the official 15, 5, 1) of the plan of the whole clip run as
//! soon as their frames have arrived and their guides exist (keyframe latents
//! from the plan, or latents of windows run before), with the plan's global
//! context. A frame is held until no window left holds it, so at most about
//! one window of the second stride's span of frames is held
//! (`PassSplit::streaming_hold`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::{KeyframePlan, PassSplit};
use crate::engine::cancel::Cancel;
use crate::engine::clip::{self, ClipFrames, ClipInput, FrameImage};
use crate::engine::error::{EngineError, Result};
use crate::engine::model::Model;
use crate::engine::pixels::tensor::rgb_from_chw;
use crate::engine::pixels::{self, CanvasInputs, RgbImage};
use crate::engine::stream::StreamStats;
use crate::engine::window::{Denoiser, GuidanceContext, WindowConstants, window_noise};

/// What a run of the streaming pass hands out, as soon as it exists.
pub enum Produced<'a> {
    /// A frame's final image `[3,C,C]` in [0,1], once per frame, in any order.
    Image(usize, &'a [f32]),
    /// A frame's kept scaled latent `[4,C/8,C/8]`, produced by this pass.
    Latent(usize, &'a [f32]),
}

/// The receiver of what a run produces.
pub type OnProduced<'a> = dyn FnMut(Produced<'_>) -> Result<()> + Send + 'a;

/// The streaming pass over a [`KeyframePlan`] (see the module notes).
pub struct PlannedStream {
    /// Shared, not copied: its keyframe latents grow with the clip's length.
    plan: Arc<KeyframePlan>,
    split: PassSplit,
    workers: Vec<Denoiser>,
    noise: Vec<f32>,
    /// The layout's pixel mask `[C*C]`.
    mask: Vec<f32>,
    /// Computed at the first run, then kept.
    constants: Option<(WindowConstants, GuidanceContext)>,
    /// Streaming windows not run yet, in plan order.
    remaining: Vec<usize>,
    /// Frames some remaining window holds, by index.
    held: BTreeMap<usize, CanvasInputs>,
    /// Frames pushed so far (the next frame's index).
    pushed: usize,
    /// Latents produced here that a remaining window takes as a guide.
    latents: HashMap<usize, Vec<f32>>,
    /// Images made and not yet returned by `run_next` (they leave in order).
    ready: BTreeMap<usize, RgbImage>,
    /// Frames returned by `run_next` so far.
    returned: usize,
    stats: StreamStats,
    windows_done: Arc<AtomicU64>,
    most_held: usize,
}

impl PlannedStream {
    /// The streaming pass of `plan` on `models` (one worker each), with the
    /// plan's denoising parameters and seeded noise. Refuses a plan made with
    /// another model or whose structure does not fit its frame count.
    pub fn new(models: &[Arc<Model>], plan: impl Into<Arc<KeyframePlan>>) -> Result<PlannedStream> {
        let plan: Arc<KeyframePlan> = plan.into();
        for model in models {
            plan.check_model(model.manifest())?;
        }
        let workers = models
            .iter()
            .map(|model| Denoiser::new(model.clone(), &plan.params))
            .collect::<Result<Vec<_>>>()?;
        let noise = window_noise(plan.params.seed, plan.layout.canvas);
        let mask = pixels::mask(&plan.layout);
        PlannedStream::from_parts(workers, plan, mask, noise)
    }

    /// The streaming pass with the given workers, pixel mask `[C*C]` and noise.
    pub fn from_parts(
        workers: Vec<Denoiser>,
        plan: impl Into<Arc<KeyframePlan>>,
        mask: Vec<f32>,
        noise: Vec<f32>,
    ) -> Result<PlannedStream> {
        let plan: Arc<KeyframePlan> = plan.into();
        if workers.is_empty() {
            return Err(EngineError::InvalidInput(
                "the streaming pass needs at least one model".into(),
            ));
        }
        plan.check_shape()?;
        let split = PassSplit::new(plan.total_frames, &plan.strides)?;
        Ok(PlannedStream {
            remaining: split.streaming_windows.clone(),
            plan,
            split,
            workers,
            noise,
            mask,
            constants: None,
            held: BTreeMap::new(),
            pushed: 0,
            latents: HashMap::new(),
            ready: BTreeMap::new(),
            returned: 0,
            stats: StreamStats::default(),
            windows_done: Arc::new(AtomicU64::new(0)),
            most_held: 0,
        })
    }

    pub fn plan(&self) -> &KeyframePlan {
        &self.plan
    }

    /// The most frames this pass holds at once for the plan (its latency in frames).
    pub fn hold(&self) -> usize {
        self.split.streaming_hold()
    }

    /// The most frames held at once so far.
    pub fn most_held(&self) -> usize {
        self.most_held
    }

    /// Queues the next frame: the source scaled to the plan's content box.
    pub fn push(&mut self, content: impl Into<Arc<RgbImage>>) -> Result<()> {
        let content: Arc<RgbImage> = content.into();
        pixels::check_rgb(&content)?;
        let inputs = pixels::canvas_inputs(&content, &self.plan.layout);
        self.push_inputs(inputs)
    }

    /// Queues the next frame's canvas inputs. A frame past the plan's count
    /// is an error naming both counts.
    pub fn push_inputs(&mut self, inputs: CanvasInputs) -> Result<()> {
        if self.pushed >= self.plan.total_frames {
            return Err(EngineError::InvalidInput(format!(
                "the stream has more frames than the {} the plan is made for",
                self.plan.total_frames
            )));
        }
        self.held.insert(self.pushed, inputs);
        self.pushed += 1;
        self.most_held = self.most_held.max(self.held.len());
        Ok(())
    }

    /// Frames pushed so far.
    pub fn pushed(&self) -> usize {
        self.pushed
    }

    /// Frames pushed and not yet returned by `run_next`.
    pub fn pending(&self) -> usize {
        self.pushed - self.returned
    }

    /// True when some window can run.
    pub fn chunk_ready(&self) -> bool {
        !self.runnable().is_empty()
    }

    pub fn stats(&self) -> &StreamStats {
        &self.stats
    }

    /// A counter of the windows finished so far, updated as each finishes.
    pub fn windows_done(&self) -> Arc<AtomicU64> {
        self.windows_done.clone()
    }

    /// Counts the windows finished in `counter` from now on (one counter
    /// over several streams).
    pub fn count_windows_in(&mut self, counter: Arc<AtomicU64>) {
        self.windows_done = counter;
    }

    /// The workers, pixel mask and noise, for the stream of another plan.
    pub fn into_parts(self) -> (Vec<Denoiser>, Vec<f32>, Vec<f32>) {
        (self.workers, self.mask, self.noise)
    }

    /// Sets how each denoiser batches (see `Denoiser::set_batching`).
    pub fn set_batching(&mut self, items_per_call: usize, windows_per_batch: usize) {
        for worker in &mut self.workers {
            worker.set_batching(items_per_call, windows_per_batch);
        }
    }

    /// The remaining windows that can run now, in plan order: their frames
    /// have arrived and each guide's latent exists or comes from one before it.
    /// Called whenever frames arrive: a window still waiting for frames (most
    /// of a long file's) costs one comparison, its guides are not looked up.
    fn runnable(&self) -> Vec<usize> {
        let plan = &self.split.plan;
        let mut will_exist: BTreeSet<usize> = BTreeSet::new();
        let mut batch = Vec::new();
        for &w in &self.remaining {
            let win = &plan.windows[w];
            if !win.frames.iter().all(|&f| f < self.pushed) {
                continue;
            }
            let guided = (0..win.frames.len()).all(|p| {
                let f = win.frames[p];
                !win.guides[p]
                    || self.plan.latents.has_keyframe(f)
                    || self.latents.contains_key(&f)
                    || will_exist.contains(&f)
            });
            if guided {
                batch.push(w);
                (0..win.frames.len())
                    .filter(|&p| win.keeps[p])
                    .for_each(|p| {
                        will_exist.insert(win.frames[p]);
                    });
            }
        }
        batch
    }

    /// Runs every window that can run (blocking), handing out each image and
    /// latent to `sink` as it is made. With `draining` (end of stream), a
    /// stream shorter than the plan is an error naming both counts.
    pub fn run_with(
        &mut self,
        draining: bool,
        sink: &mut OnProduced<'_>,
        cancel: &Cancel,
    ) -> Result<usize> {
        if draining && self.pushed < self.plan.total_frames {
            return Err(EngineError::InvalidInput(format!(
                "the stream ended after {} frames, the plan is made for {}",
                self.pushed, self.plan.total_frames
            )));
        }
        let batch = self.runnable();
        if batch.is_empty() {
            return Ok(0);
        }
        let model = self.workers[0].model().clone();
        if self.constants.is_none() {
            let canvas = self.plan.layout.canvas as usize;
            let constants = WindowConstants::new(&model, canvas, &self.mask, cancel)?;
            let context = GuidanceContext::from_latents(
                &model,
                &constants,
                &self.plan.latents.global()?,
                cancel,
            )?;
            self.constants = Some((constants, context));
        }
        let (constants, context) = self.constants.as_ref().expect("computed above");
        let plan = &self.split.plan;
        let mut known: Vec<Option<Vec<f32>>> = vec![None; plan.total_frames];
        for &w in &batch {
            let win = &plan.windows[w];
            for (p, &f) in win.frames.iter().enumerate() {
                if win.guides[p] && known[f].is_none() {
                    known[f] = match self.plan.latents.keyframe(f)? {
                        Some(latent) => Some(latent),
                        None => self.latents.get(&f).cloned(),
                    };
                }
            }
        }
        let given: Vec<bool> = known.iter().map(Option::is_some).collect();
        let frames = HeldFrames {
            held: &self.held,
            total: plan.total_frames,
            canvas: self.plan.layout.canvas,
        };
        let input = ClipInput {
            plan,
            windows: &batch,
            frames: &frames,
            constants,
            context,
            noise: &self.noise,
            fps: self.plan.fps,
            windows_done: Some(&self.windows_done),
        };
        let mut on_image = |f: usize, image: &[f32]| sink(Produced::Image(f, image));
        let output = clip::run_clip(&mut self.workers, &input, known, &mut on_image, cancel)?;

        self.remaining.retain(|w| !batch.contains(w));
        let still_guides: BTreeSet<usize> = self
            .remaining
            .iter()
            .flat_map(|&w| {
                let win = &plan.windows[w];
                (0..win.frames.len())
                    .filter(|&p| win.guides[p])
                    .map(|p| win.frames[p])
            })
            .collect();
        self.stats.add(&StreamStats::of_clip(&output));
        for (f, latent) in output.latents.into_iter().enumerate() {
            if let (false, Some(latent)) = (given[f], latent) {
                sink(Produced::Latent(f, &latent))?;
                if still_guides.contains(&f) {
                    self.latents.insert(f, latent);
                }
            }
        }
        self.latents.retain(|f, _| still_guides.contains(f));
        let lowest_needed = self
            .remaining
            .iter()
            .flat_map(|&w| plan.windows[w].frames)
            .min()
            .unwrap_or(plan.total_frames);
        self.held = self.held.split_off(&lowest_needed);
        Ok(batch.len())
    }

    /// Runs every window that can run and returns the generated canvases of
    /// the frames now final, oldest first (those after a frame still waiting
    /// stay until it is made). With `draining`, see [`Self::run_with`].
    pub fn run_next(&mut self, draining: bool, cancel: &Cancel) -> Result<Vec<RgbImage>> {
        let canvas = self.plan.layout.canvas;
        let mut made: Vec<(usize, RgbImage)> = Vec::new();
        let mut sink = |produced: Produced<'_>| -> Result<()> {
            if let Produced::Image(f, image) = produced {
                made.push((f, rgb_from_chw(image, canvas)));
            }
            Ok(())
        };
        self.run_with(draining, &mut sink, cancel)?;
        self.ready.extend(made);
        let mut out = Vec::new();
        while let Some(image) = self.ready.remove(&self.returned) {
            out.push(image);
            self.returned += 1;
        }
        Ok(out)
    }

    /// Starts the stream over from its first frame (a flush).
    pub fn reset(&mut self) {
        self.remaining = self.split.streaming_windows.clone();
        self.held.clear();
        self.pushed = 0;
        self.latents.clear();
        self.ready.clear();
        self.returned = 0;
    }
}

/// The held frames of a stream, by index.
struct HeldFrames<'a> {
    held: &'a BTreeMap<usize, CanvasInputs>,
    total: usize,
    canvas: u32,
}

impl ClipFrames for HeldFrames<'_> {
    fn len(&self) -> usize {
        self.total
    }

    fn write(&self, frame: usize, image: FrameImage, out: &mut [f32]) -> Result<()> {
        let inputs = self.held.get(&frame).ok_or_else(|| {
            EngineError::Inference(format!("frame {frame} is no longer held by the stream"))
        })?;
        clip::write_inputs(inputs, image, self.canvas, out)
    }
}
