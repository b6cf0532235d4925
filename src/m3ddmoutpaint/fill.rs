// SPDX-License-Identifier: MPL-2.0
//! The fill back-ends' interface, [`CanvasSource`]: the M3DDM
//! `StreamOutpainter` (frames held until a chunk of the lookahead is ready)
//! and the flat fills (`blur`, `color`), which give each frame's canvas at
//! once. (The two passes of a keyframe plan are in `planned.rs`; `source.rs`
//! chooses the back-end.)

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::engine::pixels::{blur_canvas, color_canvas};
use crate::engine::stream::StreamStats;
use crate::engine::{self, CanvasLayout, RgbImage, StreamOutpainter};

/// Content images in, one generated canvas per frame out, in order.
pub trait CanvasSource: Send {
    /// Queues the content image of the next frame; `starts_shot` at a scene
    /// cut (a back-end that plans chunks starts a new plan there).
    fn push(&mut self, content: Arc<RgbImage>, starts_shot: bool) -> engine::Result<()>;
    /// True when `run_next(false, ..)` has a full chunk to run.
    fn chunk_ready(&self) -> bool;
    /// The canvases of the oldest frames; with `draining`, of whatever is queued.
    fn run_next(
        &mut self,
        draining: bool,
        cancel: &engine::Cancel,
    ) -> engine::Result<Vec<RgbImage>>;
    /// Drops every queued frame.
    fn reset(&mut self);
    /// Drops the `count` oldest queued frames (they left without their canvas).
    fn drop_oldest(&mut self, count: usize);
    /// The expected time to make the canvases of `frames` queued frames, when known.
    fn cost_of(&self, frames: usize) -> Option<Duration>;
    /// True when chunks run the model (counted in the stats).
    fn runs_model(&self) -> bool;
    /// Windows finished so far, counted as they finish, for a back-end that runs windows.
    fn windows_done(&self) -> Option<Arc<AtomicU64>>;
    /// Windows run so far and the time they took, for a back-end that runs windows.
    fn window_stats(&self) -> Option<&StreamStats>;
}

impl CanvasSource for StreamOutpainter {
    fn push(&mut self, content: Arc<RgbImage>, starts_shot: bool) -> engine::Result<()> {
        match starts_shot {
            true => self.push_shot_start(content),
            false => StreamOutpainter::push(self, content),
        }
    }
    fn chunk_ready(&self) -> bool {
        StreamOutpainter::chunk_ready(self)
    }
    fn run_next(
        &mut self,
        draining: bool,
        cancel: &engine::Cancel,
    ) -> engine::Result<Vec<RgbImage>> {
        StreamOutpainter::run_next(self, draining, cancel)
    }
    fn reset(&mut self) {
        StreamOutpainter::reset(self)
    }
    fn drop_oldest(&mut self, count: usize) {
        StreamOutpainter::drop_oldest(self, count)
    }
    fn cost_of(&self, frames: usize) -> Option<Duration> {
        self.chunk_cost(frames)
    }
    fn runs_model(&self) -> bool {
        true
    }
    fn window_stats(&self) -> Option<&StreamStats> {
        Some(StreamOutpainter::stats(self))
    }
    fn windows_done(&self) -> Option<Arc<AtomicU64>> {
        Some(StreamOutpainter::windows_done(self))
    }
}

/// What a flat fill puts in the new area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlatKind {
    Blur,
    Color([u8; 3]),
}

/// `fill-mode=blur|color`: every frame's canvas is ready as soon as it is pushed.
pub struct FlatFill {
    layout: CanvasLayout,
    kind: FlatKind,
    ready: VecDeque<RgbImage>,
}

impl FlatFill {
    pub fn new(layout: CanvasLayout, kind: FlatKind) -> FlatFill {
        FlatFill {
            layout,
            kind,
            ready: VecDeque::new(),
        }
    }
}

impl CanvasSource for FlatFill {
    fn push(&mut self, content: Arc<RgbImage>, _starts_shot: bool) -> engine::Result<()> {
        let canvas = match self.kind {
            FlatKind::Blur => blur_canvas(&content, &self.layout),
            FlatKind::Color(rgb) => color_canvas(rgb, self.layout.canvas),
        };
        self.ready.push_back(canvas);
        Ok(())
    }
    fn chunk_ready(&self) -> bool {
        !self.ready.is_empty()
    }
    fn run_next(
        &mut self,
        _draining: bool,
        _cancel: &engine::Cancel,
    ) -> engine::Result<Vec<RgbImage>> {
        Ok(self.ready.drain(..).collect())
    }
    fn reset(&mut self) {
        self.ready.clear();
    }
    fn drop_oldest(&mut self, count: usize) {
        self.ready.drain(..count.min(self.ready.len()));
    }
    fn cost_of(&self, _frames: usize) -> Option<Duration> {
        Some(Duration::ZERO)
    }
    fn runs_model(&self) -> bool {
        false
    }
    fn window_stats(&self) -> Option<&StreamStats> {
        None
    }
    fn windows_done(&self) -> Option<Arc<AtomicU64>> {
        None
    }
}
