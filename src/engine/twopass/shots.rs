// SPDX-License-Identifier: MPL-2.0
//! Scene cuts: each shot is a clip of its own, as the official code would run
//! it (its own 16 global frames, its own keyframe windows). [`ShotPlans`] holds
//! the plans of a clip's shots in order; [`ShotKeyframes`] collects the frames
//! of the keyframe pass shot by shot (given the cuts, e.g. from a counting
//! read) and runs each shot's pass as soon as its last frame arrives;
//! [`ShotStream`] streams the shots one after the other, each with its plan.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::{KeyframeFrames, KeyframePlan, PlannedStream};
use crate::engine::cancel::Cancel;
use crate::engine::error::{EngineError, Result};
use crate::engine::geometry::CanvasLayout;
use crate::engine::manifest::Manifest;
use crate::engine::model::Model;
use crate::engine::pixels::RgbImage;
use crate::engine::planner::Strides;
use crate::engine::stream::StreamStats;
use crate::engine::window::DenoiseParams;

/// The keyframe plans of a clip's shots, in frame order (one without cuts).
#[derive(Debug, Clone, PartialEq)]
pub struct ShotPlans {
    pub shots: Vec<Arc<KeyframePlan>>,
}

impl ShotPlans {
    /// The plans of the shots, in order; at least one, all of one layout,
    /// frame rate, model and parameters.
    pub fn new(shots: Vec<KeyframePlan>) -> Result<ShotPlans> {
        let Some(first) = shots.first() else {
            return Err(EngineError::InvalidInput(
                "a plan needs at least one shot".into(),
            ));
        };
        for (k, shot) in shots.iter().enumerate() {
            shot.check_shape()?;
            let same = shot.layout == first.layout
                && shot.params == first.params
                && shot.model_identity == first.model_identity
                && shot.strides == first.strides
                && (shot.fps == first.fps || (shot.fps.is_nan() && first.fps.is_nan()));
            if !same {
                return Err(EngineError::InvalidInput(format!(
                    "shot {k}'s plan has another layout, frame rate, model, parameters or strides than shot 0's"
                )));
            }
        }
        Ok(ShotPlans {
            shots: shots.into_iter().map(Arc::new).collect(),
        })
    }

    fn first(&self) -> &KeyframePlan {
        &self.shots[0]
    }

    /// Frames of the whole clip.
    pub fn total_frames(&self) -> usize {
        self.shots.iter().map(|s| s.total_frames).sum()
    }

    /// The first frame of each shot after the first (the cuts).
    pub fn cuts(&self) -> Vec<usize> {
        self.shots
            .iter()
            .scan(0, |start, shot| {
                *start += shot.total_frames;
                Some(*start)
            })
            .take(self.shots.len() - 1)
            .collect()
    }

    pub fn params(&self) -> &DenoiseParams {
        &self.first().params
    }

    /// The strides every shot was planned at.
    pub fn strides(&self) -> &Strides {
        &self.first().strides
    }

    pub fn model_identity(&self) -> &str {
        &self.first().model_identity
    }

    /// Checks every shot against a stream (see [`KeyframePlan::check_stream`]).
    pub fn check_stream(&self, layout: &CanvasLayout, fps: f64) -> Result<()> {
        self.first().check_stream(layout, fps)
    }

    /// Checks that the plan was made with the model of `manifest`.
    pub fn check_model(&self, manifest: &Manifest) -> Result<()> {
        self.first().check_model(manifest)
    }

    /// The most frames the streaming pass holds at once: the most of any
    /// shot, and the first frame of the next shot while a shot drains.
    pub fn streaming_hold(&self) -> usize {
        let most = self.shots.iter().map(|s| s.streaming_hold()).max();
        most.unwrap_or(1) + usize::from(self.shots.len() > 1)
    }
}

/// The frames of the keyframe pass of a clip with scene cuts, shot by shot:
/// each shot's pass runs (through `run_shot`, given the shot's frames) when
/// its last frame is offered, so only one shot's frames are ever held.
pub struct ShotKeyframes {
    layout: CanvasLayout,
    strides: Strides,
    /// Frames of each shot, in order.
    lengths: Vec<usize>,
    shot: usize,
    frames: KeyframeFrames,
    /// Frames offered to the current shot.
    offered: usize,
    plans: Vec<KeyframePlan>,
}

/// The frames of each shot of a clip of `total_frames` frames whose shots
/// start at `cuts`; an error unless the cuts are ascending frame indices
/// inside the clip (none for one shot).
pub fn shot_lengths(total_frames: usize, cuts: &[usize]) -> Result<Vec<usize>> {
    let bounds: Vec<usize> = std::iter::once(0)
        .chain(cuts.iter().copied())
        .chain(std::iter::once(total_frames))
        .collect();
    if bounds.windows(2).any(|b| b[0] >= b[1]) {
        return Err(EngineError::InvalidInput(format!(
            "the cuts {cuts:?} do not split a clip of {total_frames} frames into shots"
        )));
    }
    Ok(bounds.windows(2).map(|b| b[1] - b[0]).collect())
}

/// Runs the keyframe pass of one shot over its frames.
pub type RunShot<'a> = dyn FnMut(&KeyframeFrames) -> Result<KeyframePlan> + 'a;

impl ShotKeyframes {
    /// A clip of `total_frames` frames whose shots start at `cuts` (frame
    /// indices, ascending, each inside the clip; none for one shot).
    /// Each shot is planned at `strides`.
    pub fn new(
        layout: CanvasLayout,
        total_frames: usize,
        cuts: &[usize],
        strides: Strides,
    ) -> Result<ShotKeyframes> {
        let lengths = shot_lengths(total_frames, cuts)?;
        Ok(ShotKeyframes {
            layout,
            frames: KeyframeFrames::new(layout, lengths[0], &strides)?,
            strides,
            lengths,
            shot: 0,
            offered: 0,
            plans: Vec::new(),
        })
    }

    /// Offers the clip's next frame (its content); at a shot's last frame,
    /// runs the shot's pass. A frame past the clip is an error.
    pub fn offer(&mut self, content: Arc<RgbImage>, run_shot: &mut RunShot<'_>) -> Result<()> {
        if self.shot == self.lengths.len() {
            return Err(EngineError::InvalidInput(format!(
                "the stream has more frames than the {} the plan is made for",
                self.lengths.iter().sum::<usize>()
            )));
        }
        self.frames.offer(self.offered, content)?;
        self.offered += 1;
        if self.offered == self.lengths[self.shot] {
            self.plans.push(run_shot(&self.frames)?);
            self.shot += 1;
            self.offered = 0;
            let next = self.lengths.get(self.shot).copied().unwrap_or(0);
            // The last shot's frames go too: an empty collector holds nothing.
            self.frames = KeyframeFrames::new(self.layout, next.max(1), &self.strides)?;
        }
        Ok(())
    }

    /// The plans of every shot, once every frame was offered.
    pub fn finish(self) -> Result<ShotPlans> {
        if self.shot < self.lengths.len() {
            return Err(EngineError::InvalidInput(format!(
                "the stream ended inside shot {} of {}",
                self.shot + 1,
                self.lengths.len()
            )));
        }
        ShotPlans::new(self.plans)
    }
}

/// The streaming pass of a clip with shots: each shot's [`PlannedStream`] in
/// turn; a shot's frames all leave
/// before the next shot's first window runs.
pub struct ShotStream {
    models: Vec<Arc<Model>>,
    plans: Arc<ShotPlans>,
    shot: usize,
    stream: PlannedStream,
    /// Frames of the next shots, pushed while the current shot drains.
    waiting: VecDeque<Arc<RgbImage>>,
    /// Stats of the finished shots.
    finished_stats: StreamStats,
    stats: StreamStats,
    windows_done: Arc<AtomicU64>,
    pushed: usize,
    returned: usize,
    most_held: usize,
}

impl ShotStream {
    /// The streaming pass of `plans` on `models` (one worker each).
    pub fn new(models: &[Arc<Model>], plans: Arc<ShotPlans>) -> Result<ShotStream> {
        let windows_done = Arc::new(AtomicU64::new(0));
        let mut stream = PlannedStream::new(models, Arc::clone(&plans.shots[0]))?;
        stream.count_windows_in(windows_done.clone());
        Ok(ShotStream {
            models: models.to_vec(),
            plans,
            shot: 0,
            stream,
            waiting: VecDeque::new(),
            finished_stats: StreamStats::default(),
            stats: StreamStats::default(),
            windows_done,
            pushed: 0,
            returned: 0,
            most_held: 0,
        })
    }

    pub fn plans(&self) -> &ShotPlans {
        &self.plans
    }

    /// The most frames this pass holds at once (its latency in frames).
    pub fn hold(&self) -> usize {
        self.plans.streaming_hold()
    }

    /// The most frames held at once so far.
    pub fn most_held(&self) -> usize {
        self.most_held
    }

    fn shot_full(&self) -> bool {
        self.stream.pushed() == self.plans.shots[self.shot].total_frames
    }

    /// Queues the next frame: the source scaled to the plan's content box.
    pub fn push(&mut self, content: impl Into<Arc<RgbImage>>) -> Result<()> {
        let total = self.plans.total_frames();
        if self.pushed >= total {
            return Err(EngineError::InvalidInput(format!(
                "the stream has more frames than the {total} the plan is made for"
            )));
        }
        self.start_next_shot_when_done()?;
        if self.shot_full() {
            self.waiting.push_back(content.into());
        } else {
            self.stream.push(content)?;
        }
        self.pushed += 1;
        let held = self.stream.pending() + self.waiting.len();
        self.most_held = self.most_held.max(held);
        Ok(())
    }

    pub fn pushed(&self) -> usize {
        self.pushed
    }

    /// Frames pushed and not yet returned by `run_next`.
    pub fn pending(&self) -> usize {
        self.pushed - self.returned
    }

    /// True when `run_next` gives frames: some window can run, or a shot
    /// whose frames have all come still holds some while the next shot's arrive.
    pub fn chunk_ready(&self) -> bool {
        self.stream.chunk_ready()
            || (self.shot_full()
                && self.has_next_shot()
                && self.stream.pending() > 0
                && !self.waiting.is_empty())
    }

    fn has_next_shot(&self) -> bool {
        self.shot + 1 < self.plans.shots.len()
    }

    /// Moves on to the next shot (with the frames waiting for it) once the
    /// current one has all its frames in and out.
    fn start_next_shot_when_done(&mut self) -> Result<()> {
        while self.shot_full() && self.stream.pending() == 0 && self.has_next_shot() {
            self.next_shot()?;
        }
        Ok(())
    }

    pub fn stats(&self) -> &StreamStats {
        &self.stats
    }

    /// A counter of the windows finished so far, over every shot.
    pub fn windows_done(&self) -> Arc<AtomicU64> {
        self.windows_done.clone()
    }

    /// Runs every window that can run and returns the generated canvases of
    /// the frames now final, oldest first. A shot whose frames have all come
    /// and whose successor's frames are arriving (or at `draining`) is
    /// finished first. With `draining`, a stream shorter than the plan is an
    /// error naming both counts.
    pub fn run_next(&mut self, draining: bool, cancel: &Cancel) -> Result<Vec<RgbImage>> {
        let total = self.plans.total_frames();
        if draining && self.pushed < total {
            return Err(EngineError::InvalidInput(format!(
                "the stream ended after {} frames, the plan is made for {total}",
                self.pushed
            )));
        }
        let mut out = Vec::new();
        self.start_next_shot_when_done()?;
        while self.shot_full() && self.has_next_shot() && (!self.waiting.is_empty() || draining) {
            out.extend(self.stream.run_next(true, cancel)?);
            self.next_shot()?;
        }
        out.extend(
            self.stream
                .run_next(draining && !self.has_next_shot(), cancel)?,
        );
        self.stats = self.finished_stats.clone();
        self.stats.add(self.stream.stats());
        self.returned += out.len();
        self.start_next_shot_when_done()?;
        Ok(out)
    }

    /// Starts the next shot's stream and gives it the frames waiting.
    fn next_shot(&mut self) -> Result<()> {
        self.finished_stats.add(self.stream.stats());
        self.shot += 1;
        self.stream = PlannedStream::new(&self.models, Arc::clone(&self.plans.shots[self.shot]))?;
        self.stream.count_windows_in(self.windows_done.clone());
        while !self.shot_full() {
            let Some(content) = self.waiting.pop_front() else {
                break;
            };
            self.stream.push(content)?;
        }
        Ok(())
    }

    /// Starts the stream over from its first frame (a flush).
    pub fn reset(&mut self) -> Result<()> {
        self.shot = 0;
        self.stream = PlannedStream::new(&self.models, Arc::clone(&self.plans.shots[0]))?;
        self.stream.count_windows_in(self.windows_done.clone());
        self.waiting.clear();
        self.pushed = 0;
        self.returned = 0;
        Ok(())
    }
}
