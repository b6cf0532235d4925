// SPDX-License-Identifier: MPL-2.0
//! `StreamOutpainter` (DESIGN.md §3): frames in, generated canvases out in
//! order, chunk by chunk over a bounded lookahead. Each chunk runs the official
//! clip plan over its frames (the planner's `ChunkPlanner`), with the previous
//! chunk's last frame as a guide (its latent given, mask 0) for continuity.
//! Every window starts from the same seeded Gaussian noise, as the official
//! code (which re-seeds per window) does.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use super::cancel::Cancel;
use super::clip::{self, ClipFrames, ClipInput, FrameImage};
use super::error::{EngineError, Result};
use super::geometry::CanvasLayout;
use super::limits::check_canvas_side;
use super::model::Model;
use super::pixels::tensor::rgb_from_chw;
use super::pixels::{self, CanvasInputs, RgbImage};
use super::planner::{self, ChunkPlan, ChunkPlanner, Strides};
use super::window::{DenoiseParams, Denoiser, WindowConstants, window_noise};

pub use super::stream_stats::StreamStats;

/// The last frame of the previous chunk, carried as the next chunk's guide.
struct CarriedFrame {
    inputs: CanvasInputs,
    latent: Vec<f32>,
}

pub struct StreamOutpainter {
    layout: CanvasLayout,
    fps: f64,
    /// One denoiser per model of the pool (device or server); the first one
    /// also computes the run's constants and each chunk's global context.
    workers: Vec<Denoiser>,
    planner: ChunkPlanner,
    /// Frames pushed and not yet returned, oldest first.
    queue: VecDeque<CanvasInputs>,
    carried: Option<CarriedFrame>,
    /// The pixel mask of the layout, `[C*C]`.
    mask: Vec<f32>,
    /// Computed at the first chunk, then kept for the whole run.
    constants: Option<WindowConstants>,
    noise: Vec<f32>,
    stats: StreamStats,
    /// The plan of the last chunk run.
    last_chunk: Option<ChunkPlan>,
    /// Windows finished so far, counted as they finish.
    windows_done: Arc<AtomicU64>,
}

impl StreamOutpainter {
    /// `fps` is the stream's frame rate (the UNet's fps input is floor(fps / stride));
    /// each chunk is planned at `strides`.
    pub fn new(
        models: &[Arc<Model>],
        params: DenoiseParams,
        layout: CanvasLayout,
        fps: f64,
        lookahead: usize,
        strides: Strides,
    ) -> Result<Self> {
        let canvas = layout.canvas;
        check_canvas_side(canvas as usize)?;
        if models.is_empty() {
            return Err(EngineError::InvalidInput(
                "a stream needs at least one model".into(),
            ));
        }
        if layout.content.width() == 0 || layout.content.height() == 0 {
            return Err(EngineError::InvalidInput(
                "the layout's content box is empty".into(),
            ));
        }
        Ok(StreamOutpainter {
            layout,
            fps,
            planner: ChunkPlanner::new(lookahead, strides)?,
            noise: window_noise(params.seed, canvas),
            workers: models
                .iter()
                .map(|model| Denoiser::new(model.clone(), &params))
                .collect::<Result<_>>()?,
            queue: VecDeque::new(),
            carried: None,
            mask: pixels::mask(&layout),
            constants: None,
            stats: StreamStats::default(),
            last_chunk: None,
            windows_done: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Queues one frame: the source scaled to `layout.content` (packed RGB).
    /// Cheap.
    pub fn push(&mut self, content: impl Into<Arc<RgbImage>>) -> Result<()> {
        self.queue_frame(content.into(), false)
    }

    /// Queues the first frame of a new shot (a scene cut, found by the
    /// caller's `scene::CutDetector`): it ends the chunk before it, and the
    /// shot gets a plan of its own.
    pub fn push_shot_start(&mut self, content: impl Into<Arc<RgbImage>>) -> Result<()> {
        self.queue_frame(content.into(), true)
    }

    fn queue_frame(&mut self, content: Arc<RgbImage>, starts_shot: bool) -> Result<()> {
        pixels::check_rgb(&content)?;
        self.queue
            .push_back(pixels::canvas_inputs(&content, &self.layout));
        if starts_shot {
            self.planner.push_cut();
            self.stats.cuts += 1;
        } else {
            self.planner.push();
        }
        Ok(())
    }

    /// A counter of the windows finished so far, updated as each finishes
    /// (a chunk's stats arrive only at its end).
    pub fn windows_done(&self) -> Arc<AtomicU64> {
        self.windows_done.clone()
    }

    /// The plan of the last chunk that ran (its windows, global frames, and
    /// its frames' stream indices), for callers that inspect a run.
    pub fn last_chunk(&self) -> Option<&ChunkPlan> {
        self.last_chunk.as_ref()
    }

    /// True when a full chunk (lookahead frames) is queued.
    pub fn chunk_ready(&self) -> bool {
        self.planner.is_ready()
    }

    /// Frames queued and not yet returned.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    pub fn stats(&self) -> &StreamStats {
        &self.stats
    }

    /// Sets how each denoiser batches (see `Denoiser::set_batching`).
    pub fn set_batching(&mut self, items_per_call: usize, windows_per_batch: usize) {
        for worker in &mut self.workers {
            worker.set_batching(items_per_call, windows_per_batch);
        }
    }

    /// Runs the next chunk (blocking) and returns its generated canvases, one per
    /// frame, oldest first. With `draining`, runs whatever is queued (EOS).
    /// Checks `cancel` between denoising steps and returns `Cancelled`; after an
    /// error the queued frames stay queued.
    pub fn run_next(&mut self, draining: bool, cancel: &Cancel) -> Result<Vec<RgbImage>> {
        let before = self.planner.clone();
        let Some(chunk) = self.planner.next_chunk(draining) else {
            return Ok(Vec::new());
        };
        match self.run_chunk(&chunk, cancel) {
            Ok(images) => {
                self.last_chunk = Some(chunk);
                Ok(images)
            }
            Err(e) => {
                self.planner = before;
                Err(e)
            }
        }
    }

    fn run_chunk(&mut self, chunk: &ChunkPlan, cancel: &Cancel) -> Result<Vec<RgbImage>> {
        let count = chunk.new_frames.len();
        let carried = match (chunk.carried_guide, &self.carried) {
            (Some(_), Some(c)) => Some(c),
            (None, _) => None,
            (Some(_), None) => {
                return Err(EngineError::Inference(
                    "the chunk needs a carried guide frame that is missing".into(),
                ));
            }
        };
        let canvas = self.layout.canvas;
        let model = self.workers[0].model().clone();
        if self.constants.is_none() {
            self.constants = Some(WindowConstants::new(
                &model,
                canvas as usize,
                &self.mask,
                cancel,
            )?);
        }
        let constants = self.constants.as_ref().expect("computed above");
        let frames = ChunkFrames {
            carried: carried.map(|c| &c.inputs),
            queued: &self.queue,
            count,
            canvas,
        };
        let mut known = vec![None; chunk.local_len()];
        if let Some(c) = carried {
            known[0] = Some(c.latent.clone());
        }
        let first_emitted = chunk.emitted_locals().start;
        let mut images: Vec<Option<RgbImage>> = vec![None; count];
        let mut store = |local: usize, image: &[f32]| -> Result<()> {
            if let Some(slot) = local
                .checked_sub(first_emitted)
                .and_then(|k| images.get_mut(k))
            {
                *slot = Some(rgb_from_chw(image, canvas));
            }
            Ok(())
        };
        let context = clip::global_context(&model, constants, &chunk.plan, &frames, cancel)?;
        let windows = clip::all_windows(&chunk.plan);
        let input = ClipInput {
            plan: &chunk.plan,
            windows: &windows,
            frames: &frames,
            constants,
            context: &context,
            noise: &self.noise,
            fps: self.fps,
            windows_done: Some(&self.windows_done),
        };
        let output = clip::run_clip(&mut self.workers, &input, known, &mut store, cancel)?;
        let images: Vec<RgbImage> =
            images
                .into_iter()
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    EngineError::Inference(
                        "the plan left a frame of the chunk without an image".into(),
                    )
                })?;
        let last_latent = output.latents.last().cloned().flatten();
        let last_latent = last_latent
            .ok_or_else(|| EngineError::Inference("the chunk's last frame has no latent".into()))?;

        self.stats.add(&StreamStats::of_clip(&output));
        let mut emitted: Vec<CanvasInputs> = self.queue.drain(..count).collect();
        let last_inputs = emitted.pop().expect("a chunk holds at least one frame");
        self.carried = Some(CarriedFrame {
            inputs: last_inputs,
            latent: last_latent,
        });
        Ok(images)
    }

    /// Drops the `count` oldest queued frames, which left without being
    /// generated (a live stream that fell behind): the next chunk starts after
    /// them, the last generated frame still its guide.
    pub fn drop_oldest(&mut self, count: usize) {
        let count = count.min(self.queue.len());
        self.queue.drain(..count);
        self.planner.drop_oldest(count);
    }

    /// The expected time of a chunk of `frames` frames, from the windows its
    /// plan holds and the mean window time so far (`None` before any window ran).
    pub fn chunk_cost(&self, frames: usize) -> Option<Duration> {
        let runs = u32::try_from(self.stats.windows_run)
            .ok()
            .filter(|&n| n > 0)?;
        let mean = self.stats.window_time / runs;
        let carried = self.carried.is_some();
        let windows = planner::plan_clip(
            frames.max(1) + usize::from(carried),
            carried,
            self.planner.strides(),
        )
        .map_or(1, |plan| plan.windows.len());
        Some(mean * windows as u32)
    }

    /// Drops every queued frame and all carried state (flush).
    pub fn reset(&mut self) {
        self.queue.clear();
        self.planner.reset();
        self.carried = None;
    }
}

/// The frames of one chunk: the carried guide (local 0, when there is one),
/// then the first `count` queued frames.
struct ChunkFrames<'a> {
    carried: Option<&'a CanvasInputs>,
    queued: &'a VecDeque<CanvasInputs>,
    count: usize,
    canvas: u32,
}

impl ClipFrames for ChunkFrames<'_> {
    fn len(&self) -> usize {
        self.count + usize::from(self.carried.is_some())
    }

    fn write(&self, frame: usize, image: FrameImage, out: &mut [f32]) -> Result<()> {
        let inputs = match (self.carried, frame) {
            (Some(c), 0) => c,
            (Some(_), f) => &self.queued[f - 1],
            (None, f) => &self.queued[f],
        };
        clip::write_inputs(inputs, image, self.canvas, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::test_support::{
        moving_column_frame as content_frame, one_step_params, portrait_layout as layout,
        tiny_model,
    };

    fn params() -> DenoiseParams {
        one_step_params(7)
    }

    fn run_stream(model: &Arc<Model>, frames: usize, lookahead: usize) -> Vec<RgbImage> {
        let layout = layout(model.canvas());
        let models = std::slice::from_ref(model);
        let mut stream = StreamOutpainter::new(
            models,
            params(),
            layout,
            30.0,
            lookahead,
            Strides::official(),
        )
        .unwrap();
        stream_frames(&mut stream, &layout, frames)
    }

    /// Pushes `frames` content frames through `stream` and returns every canvas.
    fn stream_frames(
        stream: &mut StreamOutpainter,
        layout: &CanvasLayout,
        frames: usize,
    ) -> Vec<RgbImage> {
        let cancel = Cancel::new();
        let mut out = Vec::new();
        for k in 0..frames {
            stream.push(content_frame(layout, k)).unwrap();
            if stream.chunk_ready() {
                out.extend(stream.run_next(false, &cancel).unwrap());
            }
        }
        while stream.pending() > 0 {
            out.extend(stream.run_next(true, &cancel).unwrap());
        }
        assert!(stream.run_next(true, &cancel).unwrap().is_empty());
        out
    }

    #[test]
    fn every_frame_leaves_once_in_order_with_a_small_lookahead() {
        let model = tiny_model();
        let canvas = model.canvas();
        for frames in [1, 15, 17] {
            let out = run_stream(&model, frames, 6);
            assert_eq!(out.len(), frames, "{frames} frames in");
            assert!(out.iter().all(|c| c.width == canvas && c.height == canvas));
        }
    }

    #[test]
    fn chunks_equal_clip_runs_with_the_carried_guide() {
        let model = tiny_model();
        let layout = layout(model.canvas());
        let (frames, lookahead) = (9, 5);
        let streamed = run_stream(&model, frames, lookahead);
        assert_eq!(streamed.len(), frames);

        // The same frames through the clip runner: chunk 0 = frames 0..5 with the
        // official plan; chunk 1 = [frame 4 (its latent known), frames 5..9].
        let inputs: Vec<CanvasInputs> = (0..frames)
            .map(|k| pixels::canvas_inputs(&Arc::new(content_frame(&layout, k)), &layout))
            .collect();
        let mut denoiser = Denoiser::new(model.clone(), &params()).unwrap();
        let noise = window_noise(params().seed, layout.canvas);
        let cancel = Cancel::new();
        let constants = WindowConstants::new(
            &model,
            layout.canvas as usize,
            &pixels::mask(&layout),
            &cancel,
        )
        .unwrap();
        let mut expected: Vec<Option<RgbImage>> = vec![None; frames];
        let mut carried_latent = None;
        for (first, count, carried) in [
            (0usize, lookahead, false),
            (lookahead - 1, frames - lookahead + 1, true),
        ] {
            let queued: VecDeque<CanvasInputs> = inputs[first..first + count].to_vec().into();
            let chunk = ChunkFrames {
                carried: None,
                queued: &queued,
                count,
                canvas: layout.canvas,
            };
            let plan = planner::plan_clip(count, carried, &Strides::official()).unwrap();
            let mut known = vec![None; count];
            known[0] = if carried {
                carried_latent.clone()
            } else {
                None
            };
            let context = clip::global_context(&model, &constants, &plan, &chunk, &cancel).unwrap();
            let windows = clip::all_windows(&plan);
            let input = ClipInput {
                plan: &plan,
                windows: &windows,
                frames: &chunk,
                constants: &constants,
                context: &context,
                noise: &noise,
                fps: 30.0,
                windows_done: None,
            };
            let mut store = |local: usize, image: &[f32]| -> Result<()> {
                if !(carried && local == 0) {
                    expected[first + local] = Some(rgb_from_chw(image, layout.canvas));
                }
                Ok(())
            };
            let output = clip::run_clip(
                std::slice::from_mut(&mut denoiser),
                &input,
                known,
                &mut store,
                &cancel,
            )
            .unwrap();
            carried_latent = output.latents[count - 1].clone();
        }
        for (k, (got, want)) in streamed.iter().zip(&expected).enumerate() {
            assert_eq!(Some(got), want.as_ref(), "frame {k}");
        }
    }

    #[test]
    fn a_pool_of_two_models_gives_the_frames_of_one_and_both_work() {
        use crate::engine::runtime::ExecutionProvider;
        use crate::engine::test_support::model_options;
        let one = tiny_model();
        // A second session set of the same model, as a second device would have.
        let two = Model::load(&model_options(ExecutionProvider::Cpu)).unwrap();
        let layout = layout(one.canvas());
        let frames = 60; // strides 15, 5 and 1: four independent stride-1 windows
        let new = |models: &[Arc<Model>]| {
            StreamOutpainter::new(models, params(), layout, 30.0, frames, Strides::official())
                .unwrap()
        };
        let single = stream_frames(&mut new(std::slice::from_ref(&one)), &layout, frames);
        let mut pooled = new(&[one.clone(), two]);
        assert_eq!(stream_frames(&mut pooled, &layout, frames), single);
        let by_worker = &pooled.stats().windows_by_worker;
        assert_eq!(by_worker.len(), 2);
        assert!(by_worker.iter().all(|&w| w > 0), "{by_worker:?}");
        assert_eq!(by_worker.iter().sum::<u64>(), pooled.stats().windows_run);
        // Independent windows batched into shared U-Net calls: the same frames.
        let mut batched = new(&[one]);
        batched.set_batching(12, 4);
        assert_eq!(stream_frames(&mut batched, &layout, frames), single);
    }

    #[test]
    fn two_shots_give_two_plans_with_global_frames_of_their_own() {
        let model = tiny_model();
        let layout = layout(model.canvas());
        let mut stream = StreamOutpainter::new(
            std::slice::from_ref(&model),
            params(),
            layout,
            30.0,
            64,
            Strides::official(),
        )
        .unwrap();
        let cancel = Cancel::new();
        let (w, h) = (layout.content.width(), layout.content.height());
        let mut plans = Vec::new();
        for k in 0..30usize {
            // Shot A: the moving column; shot B (from frame 20): a dark flat picture.
            if k < 20 {
                stream.push(content_frame(&layout, k)).unwrap();
            } else if k == 20 {
                stream
                    .push_shot_start(RgbImage::filled(w, h, [10, 20, 60]))
                    .unwrap();
            } else {
                stream
                    .push(RgbImage::filled(w, h, [10, 20, 40 + k as u8]))
                    .unwrap();
            }
            while stream.chunk_ready() {
                stream.run_next(false, &cancel).unwrap();
                plans.push(stream.last_chunk().unwrap().clone());
            }
        }
        while stream.pending() > 0 {
            stream.run_next(true, &cancel).unwrap();
            plans.push(stream.last_chunk().unwrap().clone());
        }
        assert_eq!(stream.stats().cuts, 1);
        let shots: Vec<_> = plans.iter().map(|p| p.new_frames.clone()).collect();
        assert_eq!(shots, vec![0..20, 20..30]);
        for plan in &plans {
            assert_eq!(plan.carried_guide, None);
            for &g in &plan.plan.global_frames {
                assert!(plan.new_frames.contains(&plan.to_stream(g)), "{g}");
            }
        }
    }

    #[test]
    fn cancel_keeps_the_frames_queued_and_reset_drops_them() {
        let model = tiny_model();
        let layout = layout(model.canvas());
        let mut stream =
            StreamOutpainter::new(&[model], params(), layout, 30.0, 4, Strides::official())
                .unwrap();
        for k in 0..4 {
            stream.push(content_frame(&layout, k)).unwrap();
        }
        assert!(stream.chunk_ready());
        let cancel = Cancel::new();
        cancel.request();
        assert_eq!(stream.run_next(false, &cancel), Err(EngineError::Cancelled));
        assert_eq!(stream.pending(), 4);
        assert!(stream.chunk_ready());
        cancel.clear();
        stream.reset();
        assert_eq!(stream.pending(), 0);
        assert!(stream.run_next(true, &cancel).unwrap().is_empty());
        assert!(
            stream
                .push(RgbImage {
                    width: 0,
                    height: 0,
                    data: vec![]
                })
                .is_err()
        );
    }
}
