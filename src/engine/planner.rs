// SPDX-License-Identifier: MPL-2.0
//! The window planner: the official whole-clip coarse-to-fine plan and a
//! streaming chunk planner over a bounded lookahead.
//!
//! Official plan (`src/inference.py`): strides [15, 5, 1] (only [1] under 50
//! frames; another list through [`Strides`], planned by the same rule, which
//! is M3DDM+'s `--strides`); for each stride, 16-frame windows start every 15 entries of the
//! strided frame list, `range(0, N // stride - 1, 15)`; a short window is padded
//! with the clip's last frame. A frame whose latent an earlier window produced
//! is a guide (its latent as the condition, mask 0); a frame's latent is kept
//! from the first window (and first position) producing it; a frame's image is
//! the decode of the last window holding it. The 16 global frames are
//! `linspace(0, N-1, 16)` as integers. For one frame the official code plans
//! nothing; this planner gives one window `[0; 16]` so that the frame is made.
//!
//! Streaming: `ChunkPlanner` groups arriving frames into chunks of `lookahead`
//! frames (fewer at the end of the stream). Chunk k > 0 is planned with the
//! official plan over [last frame of chunk k-1, already made: a guide] + its
//! new frames, so every frame is emitted once, in order, none waits for more
//! than `lookahead` frames, and a clip no longer than the lookahead gets exactly
//! the official plan. A scene cut ends the chunk before it (the shot's frames
//! form a chunk at once) and the next chunk starts a plan of its own, with no
//! guide from the previous shot and global frames from its own shot only.

use std::ops::Range;

use super::error::{EngineError, Result};
use super::scheduler::linspace_like_numpy;

mod strides;
pub use strides::{MAX_STRIDE, Strides};

/// Frames per window.
pub const WINDOW_LEN: usize = 16;
/// Distance between window starts, in entries of the strided frame list.
pub const WINDOW_STEP: usize = 15;
/// Global frames per clip.
pub const GLOBAL_FRAMES: usize = 16;
/// Clips shorter than this run at stride 1 only, whatever the stride list.
pub const COARSE_MIN_FRAMES: usize = 50;

/// One 16-frame window of a plan (frame indices local to the plan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub stride: usize,
    pub frames: [usize; WINDOW_LEN],
    /// Frames whose latent exists before this window runs: their latent is the
    /// condition and their mask is 0.
    pub guides: [bool; WINDOW_LEN],
    /// Positions whose latent this window produces and the clip keeps.
    pub keeps: [bool; WINDOW_LEN],
}

impl Window {
    /// The UNet's fps input for this window: the official `fps // stride`.
    pub fn fps_input(&self, fps: f64) -> i64 {
        window_fps(fps, self.stride)
    }
}

/// A window and a position in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSource {
    pub window: usize,
    pub position: usize,
}

/// The plan of a clip of `total_frames` frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipPlan {
    pub total_frames: usize,
    /// In the order they run.
    pub windows: Vec<Window>,
    /// The frames whose stretched images feed the global encoder.
    pub global_frames: [usize; GLOBAL_FRAMES],
    /// Per frame: the window (and its first position holding the frame) whose
    /// decoded image is the frame's output, the last window holding it.
    pub image_source: Vec<FrameSource>,
    /// Per frame: the window and position that produce its latent, the first
    /// one; `None` for a frame whose latent is given before the plan runs.
    pub latent_source: Vec<Option<FrameSource>>,
}

impl ClipPlan {
    /// Per frame, the index of the window its image comes from.
    pub fn image_windows(&self) -> Vec<usize> {
        self.image_source.iter().map(|s| s.window).collect()
    }
}

/// The official plan of a clip of `total_frames` (≥ 1) frames.
pub fn official_plan(total_frames: usize) -> Result<ClipPlan> {
    plan_clip(total_frames, false, &Strides::official())
}

/// The plan over `total_frames` frames at `strides`; with `first_frame_known`,
/// frame 0's latent is given in advance (a guide in every window holding it).
pub fn plan_clip(
    total_frames: usize,
    first_frame_known: bool,
    strides: &Strides,
) -> Result<ClipPlan> {
    if total_frames == 0 {
        return Err(EngineError::InvalidInput(
            "a clip of 0 frames has no plan".into(),
        ));
    }
    let n = total_frames;
    let last = n - 1;
    let mut frame_lists: Vec<(usize, [usize; WINDOW_LEN])> = Vec::new();
    for &stride in strides.for_frames(n) {
        let strided: Vec<usize> = (0..n).step_by(stride).collect();
        for start in (0..(n / stride).saturating_sub(1)).step_by(WINDOW_STEP) {
            let mut frames = [last; WINDOW_LEN];
            for (slot, &f) in frames.iter_mut().zip(strided.iter().skip(start)) {
                *slot = f;
            }
            frame_lists.push((stride, frames));
        }
    }
    if frame_lists.is_empty() {
        // One frame: the official code plans nothing; one padded window makes it.
        frame_lists.push((1, [0; WINDOW_LEN]));
    }

    let mut latent_source: Vec<Option<FrameSource>> = vec![None; n];
    let mut produced = vec![false; n];
    produced[0] = first_frame_known;
    let mut image_source = vec![
        FrameSource {
            window: 0,
            position: 0
        };
        n
    ];
    let mut windows = Vec::with_capacity(frame_lists.len());
    for (w, (stride, frames)) in frame_lists.into_iter().enumerate() {
        let guides = frames.map(|f| produced[f]);
        let mut keeps = [false; WINDOW_LEN];
        for (p, &f) in frames.iter().enumerate() {
            let first_here = !frames[..p].contains(&f);
            if first_here {
                image_source[f] = FrameSource {
                    window: w,
                    position: p,
                };
                if !guides[p] {
                    keeps[p] = true;
                    latent_source[f] = Some(FrameSource {
                        window: w,
                        position: p,
                    });
                }
            }
        }
        for &f in &frames {
            produced[f] = true;
        }
        windows.push(Window {
            stride,
            frames,
            guides,
            keeps,
        });
    }
    Ok(ClipPlan {
        total_frames: n,
        windows,
        global_frames: global_frames(n),
        image_source,
        latent_source,
    })
}

/// numpy's `linspace(0, n-1, 16, dtype=int)` (floor of each value).
pub fn global_frames(total_frames: usize) -> [usize; GLOBAL_FRAMES] {
    let values = linspace_like_numpy(0.0, total_frames.saturating_sub(1) as f64, GLOBAL_FRAMES);
    std::array::from_fn(|i| values[i].floor() as usize)
}

/// Python's float floor division `fps // stride` (0 for a rate that is not a
/// positive number, e.g. a variable frame rate).
pub fn window_fps(fps: f64, stride: usize) -> i64 {
    if fps.is_nan() || fps <= 0.0 || stride == 0 {
        return 0;
    }
    let divisor = stride as f64;
    let remainder = fps % divisor;
    let quotient = (fps - remainder) / divisor;
    let mut floor = quotient.floor();
    if quotient - floor > 0.5 {
        floor += 1.0;
    }
    floor as i64
}

/// One chunk of a stream: the official plan over its local frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkPlan {
    /// The previous chunk's last frame (stream index), local frame 0 of this
    /// chunk: already emitted, its latent given (a guide), its image not
    /// emitted again. `None` for the first chunk after a start or reset.
    pub carried_guide: Option<usize>,
    /// The stream indices this chunk emits, in order.
    pub new_frames: Range<usize>,
    /// The plan over local frames `0..local_len()`; with a carried guide its
    /// frame 0 is known in advance.
    pub plan: ClipPlan,
}

impl ChunkPlan {
    /// The stream index of local frame 0.
    pub fn first_frame(&self) -> usize {
        self.carried_guide.unwrap_or(self.new_frames.start)
    }

    /// Frames planned over: the carried guide (if any) and the new frames.
    pub fn local_len(&self) -> usize {
        self.plan.total_frames
    }

    /// The stream index of a local frame (the carried guide may lie further
    /// back when frames were dropped in between).
    pub fn to_stream(&self, local: usize) -> usize {
        match (self.carried_guide, local) {
            (Some(carried), 0) => carried,
            (Some(_), local) => self.new_frames.start + local - 1,
            (None, local) => self.new_frames.start + local,
        }
    }

    /// The local indices of the frames this chunk emits.
    pub fn emitted_locals(&self) -> Range<usize> {
        let skip = usize::from(self.carried_guide.is_some());
        skip..self.local_len()
    }
}

/// Groups arriving frames into chunks over a lookahead (see the module notes).
#[derive(Debug, Clone)]
pub struct ChunkPlanner {
    lookahead: usize,
    strides: Strides,
    /// Stream index of the oldest queued frame (= frames emitted so far).
    next_frame: usize,
    queued: usize,
    /// Stream indices of queued frames that start a new shot, oldest first.
    cuts: std::collections::VecDeque<usize>,
    /// The last frame of the last chunk (the next chunk's carried guide).
    last_emitted: Option<usize>,
}

impl ChunkPlanner {
    /// A planner emitting chunks of `lookahead` (≥ 1) frames, each planned at `strides`.
    pub fn new(lookahead: usize, strides: Strides) -> Result<ChunkPlanner> {
        if lookahead == 0 {
            return Err(EngineError::InvalidInput(
                "the lookahead must be at least 1 frame".into(),
            ));
        }
        Ok(ChunkPlanner {
            lookahead,
            strides,
            next_frame: 0,
            queued: 0,
            cuts: std::collections::VecDeque::new(),
            last_emitted: None,
        })
    }

    pub fn lookahead(&self) -> usize {
        self.lookahead
    }

    pub fn strides(&self) -> &Strides {
        &self.strides
    }

    /// One more frame arrived; true when a full chunk is ready.
    pub fn push(&mut self) -> bool {
        self.queued += 1;
        self.is_ready()
    }

    /// One more frame arrived that starts a new shot; true when a chunk is ready
    /// (the frames of the shot before it, if any).
    pub fn push_cut(&mut self) -> bool {
        self.cuts.push_back(self.next_frame + self.queued);
        self.push()
    }

    /// A full chunk is queued, or a whole shot before a cut.
    pub fn is_ready(&self) -> bool {
        self.queued >= self.lookahead || self.shot_end().is_some()
    }

    /// The end (a cut's stream index) of the shot the queue starts with, when
    /// that shot is complete and not empty.
    fn shot_end(&self) -> Option<usize> {
        self.cuts
            .iter()
            .copied()
            .find(|&cut| cut > self.next_frame && cut < self.next_frame + self.queued)
    }

    /// Frames arrived and not yet handed out in a chunk.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Frames handed out in chunks so far.
    pub fn planned(&self) -> usize {
        self.next_frame
    }

    /// The next chunk: `lookahead` frames when that many are queued; with
    /// `draining` (end of stream) whatever is queued, up to `lookahead`.
    /// `None` when no chunk is due.
    pub fn next_chunk(&mut self, draining: bool) -> Option<ChunkPlan> {
        if self.queued == 0 || (!self.is_ready() && !draining) {
            return None;
        }
        let starts_shot = self.cuts.front() == Some(&self.next_frame);
        if starts_shot {
            self.cuts.pop_front();
        }
        let mut count = self.queued.min(self.lookahead);
        if let Some(end) = self.shot_end() {
            count = count.min(end - self.next_frame);
        }
        let carried_guide = if starts_shot { None } else { self.last_emitted };
        let local_len = count + usize::from(carried_guide.is_some());
        let plan = plan_clip(local_len, carried_guide.is_some(), &self.strides).ok()?;
        let new_frames = self.next_frame..self.next_frame + count;
        self.next_frame += count;
        self.queued -= count;
        self.last_emitted = Some(new_frames.end - 1);
        Some(ChunkPlan {
            carried_guide,
            new_frames,
            plan,
        })
    }

    /// Drops the `count` oldest queued frames, which will not be planned (they
    /// left without being generated); the next chunk keeps the last emitted
    /// frame as its guide.
    pub fn drop_oldest(&mut self, count: usize) {
        let count = count.min(self.queued);
        self.next_frame += count;
        self.queued -= count;
        let next = self.next_frame;
        self.cuts.retain(|&cut| cut >= next);
    }

    /// Forgets every queued frame and the carried guide (flush, new stream).
    pub fn reset(&mut self) {
        self.next_frame = 0;
        self.queued = 0;
        self.cuts.clear();
        self.last_emitted = None;
    }
}

#[cfg(test)]
mod stride_tests;
#[cfg(test)]
mod tests;
