// SPDX-License-Identifier: MPL-2.0
//! The generator: a thread that owns the fill back-end (`fill.rs`) and turns
//! the frames the task hands it into canvases, in order. It runs the engine's
//! chunks with no lock held; a flush (a new epoch, its cancel flag set) stops a
//! chunk within one model call and makes the back-end drop what it held. A
//! failure is left in the state for the task to report. It also runs the
//! scene-cut detector on the frames' squares, in stream order, and tells
//! the back-end where shots start.
//!
//! When frames have a deadline (live safety), a chunk starts early enough for
//! its oldest frame to make it (from the measured cost of a chunk), and frames
//! that left without their canvas are dropped before the next chunk, which
//! starts after them with the last generated frame as its guide.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use gst::glib;
use gst::prelude::*;

use super::CAT;
use super::fill::CanvasSource;
use super::source::new_source;
use super::state::{GenInput, Shared, State};
use crate::engine::scene::CutDetector;
use crate::engine::stream::StreamStats;
use crate::engine::{EngineError, RgbImage};

/// Starts the generator thread of a run; it ends when the state says `shutdown`.
pub fn spawn(shared: Arc<Shared>, element: &gst::Element) -> std::io::Result<JoinHandle<()>> {
    let element = element.downgrade();
    std::thread::Builder::new()
        .name("m3ddm-generator".into())
        .spawn(move || Worker::new(shared, element).run())
}

/// What the generator does next.
enum Work {
    Take(Vec<GenInput>),
    Run {
        draining: bool,
    },
    /// Nothing arrived for `stall-timeout`: the frames held run as a chunk.
    Stalled,
}

struct Worker {
    shared: Arc<Shared>,
    element: glib::WeakRef<gst::Element>,
    source: Option<Box<dyn CanvasSource>>,
    /// Finds the frames that start a shot (with `scene-threshold` above 0).
    detector: Option<CutDetector>,
    /// The sequence numbers and arrival times of the frames inside `source`, oldest first.
    held: VecDeque<(u64, Instant)>,
    epoch: u64,
    /// The back-end's window counters when last added to the stats.
    windows_seen: StreamStats,
    /// Set after a failure: nothing runs until the next flush.
    failed: bool,
}

impl Worker {
    fn new(shared: Arc<Shared>, element: glib::WeakRef<gst::Element>) -> Worker {
        Worker {
            shared,
            element,
            source: None,
            detector: None,
            held: VecDeque::new(),
            epoch: 0,
            windows_seen: StreamStats::default(),
            failed: false,
        }
    }

    fn run(mut self) {
        while let Some(work) = self.next_work() {
            let result = match work {
                Work::Take(inputs) => self.take(inputs),
                Work::Run { draining } => self.run_chunk(draining),
                Work::Stalled => {
                    self.announce_stall();
                    self.run_chunk(true)
                }
            };
            if let Err(err) = result {
                self.fail(err);
            }
        }
    }

    /// Waits until there is something to do; `None` at shutdown.
    fn next_work(&mut self) -> Option<Work> {
        let shared = self.shared.clone();
        let mut state = shared.lock();
        loop {
            if state.generator.shutdown {
                return None;
            }
            if state.generator.epoch != self.epoch {
                self.epoch = state.generator.epoch;
                self.held.clear();
                self.failed = false;
                if let Some(source) = self.source.as_mut() {
                    source.reset();
                }
                if let Some(detector) = self.detector.as_mut() {
                    detector.reset();
                }
            }
            if !self.failed {
                if !state.generator.input.is_empty() {
                    return Some(Work::Take(state.generator.input.drain(..).collect()));
                }
                self.drop_abandoned(&mut state);
                let mut timeout = None;
                if let Some(source) = self.source.as_ref()
                    && let Some(&(_, oldest)) = self.held.front()
                {
                    if source.chunk_ready() {
                        return Some(Work::Run { draining: false });
                    }
                    if state.generator.drain {
                        return Some(Work::Run { draining: true });
                    }
                    if let Some(start) = self.latest_start(&state, source.as_ref(), oldest) {
                        let now = Instant::now();
                        if now >= start {
                            return Some(Work::Run { draining: true });
                        }
                        timeout = Some(start - now);
                    }
                    if let Some(stall) = state.stall_deadline() {
                        let now = Instant::now();
                        if now >= stall {
                            return Some(Work::Stalled);
                        }
                        timeout = timeout.into_iter().chain([stall - now]).min();
                    }
                }
                state = shared.wait(state, timeout);
                continue;
            }
            state = shared.wait(state, None);
        }
    }

    /// Counts a stall and, the first time in a run, posts the warning that
    /// names its cause and remedy.
    fn announce_stall(&self) {
        let (first, held, lookahead, fps) = {
            let mut state = self.shared.lock();
            state.stats.stalls += 1;
            let first = !state.stall_warned;
            state.stall_warned = true;
            let lookahead = state.run.as_ref().map_or(0, |run| run.settings.lookahead);
            (first, self.held.len(), lookahead, state.fps)
        };
        gst::debug!(
            CAT,
            "no input for stall-timeout: running the {held} frames held"
        );
        let Some(element) = self.element.upgrade().filter(|_| first) else {
            return;
        };
        let seconds = f64::from(lookahead) / fps.unwrap_or(crate::engine::limits::FALLBACK_FPS);
        gst::element_warning!(
            element,
            gst::StreamError::Failed,
            ("No frame arrived for stall-timeout while {held} of lookahead={lookahead} frames were held: \
                 another branch of the pipeline is full (a queue after a demuxer or tee) and blocks upstream. \
                 Give the queues of the other branches at least lookahead / framerate = {seconds:.1} s \
                 (e.g. queue max-size-time=0 max-size-bytes=0 max-size-buffers=0) or set a smaller lookahead; \
                 meanwhile the frames held run as a shorter chunk whenever this happens"),
            ["stall-timeout=0 waits instead"]
        );
    }

    /// Drops the held frames that already left without their canvas.
    fn drop_abandoned(&mut self, state: &mut State) {
        let Some(through) = state.generator.abandoned_through else {
            return;
        };
        let count = self
            .held
            .iter()
            .take_while(|(seq, _)| *seq <= through)
            .count();
        if count == 0 {
            return;
        }
        if let Some(source) = self.source.as_mut() {
            source.drop_oldest(count);
        }
        self.held.drain(..count);
        state.generator.in_flight = state.generator.in_flight.saturating_sub(count);
        gst::debug!(CAT, "dropped {count} frames that left with the blur fill");
    }

    /// With frame deadlines: the latest moment a chunk of the held frames can
    /// start for the oldest to make its deadline (from the measured cost of a
    /// chunk; half the bound before any chunk ran).
    fn latest_start(
        &self,
        state: &State,
        source: &dyn CanvasSource,
        oldest: Instant,
    ) -> Option<Instant> {
        let bound = state.deadlines.bound?;
        let cost = source.cost_of(self.held.len()).unwrap_or(bound / 2);
        let budget = bound.saturating_sub(state.deadlines.margin() + cost);
        Some(oldest + budget)
    }

    /// New configurations and frames, in order (the back-end work of a push is
    /// done with no lock held).
    fn take(&mut self, inputs: Vec<GenInput>) -> Result<(), EngineError> {
        for input in inputs {
            match input {
                GenInput::Configure(config) => {
                    let run = self.shared.lock().run.clone();
                    let Some(run) = run else { continue };
                    let source = new_source(&run, &config.config)?;
                    self.shared.lock().generator.windows_done = source.windows_done();
                    self.source = Some(source);
                    self.detector = run
                        .detects_cuts()
                        .then(|| CutDetector::new(run.settings.scene_threshold as f32));
                    self.held.clear();
                    self.windows_seen = StreamStats::default();
                }
                GenInput::Frame {
                    seq,
                    content,
                    cut_image,
                    arrived,
                } => {
                    let starts_shot = self.starts_shot(seq, cut_image.as_ref());
                    let source = self.source.as_mut().ok_or_else(|| {
                        EngineError::InvalidInput("a frame arrived before its caps".into())
                    })?;
                    source.push(content, starts_shot)?;
                    if starts_shot {
                        let mut state = self.shared.lock();
                        state.generator.cuts.push_back(seq);
                        state.stats.scene_cuts += 1;
                    }
                    self.held.push_back((seq, arrived));
                }
            }
        }
        Ok(())
    }

    /// Whether frame `seq`, of this square, starts a new shot (its score is
    /// in the debug log, for choosing a threshold).
    fn starts_shot(&mut self, seq: u64, cut_image: Option<&RgbImage>) -> bool {
        let (Some(detector), Some(image)) = (self.detector.as_mut(), cut_image) else {
            return false;
        };
        let score = detector.score(image);
        gst::log!(CAT, "frame {seq}: scene-cut score {score:.4}");
        detector.is_cut(score)
    }

    /// Runs the next chunk and hands its canvases to the task.
    fn run_chunk(&mut self, draining: bool) -> Result<(), EngineError> {
        let Some(source) = self.source.as_mut() else {
            return Ok(());
        };
        let (cancel, epoch) = {
            let state = self.shared.lock();
            (state.generator.cancel.clone(), state.generator.epoch)
        };
        let started = Instant::now();
        let canvases = match source.run_next(draining, &cancel) {
            Ok(canvases) => canvases,
            // A flush: the next loop sees the new epoch.
            Err(EngineError::Cancelled) => return Ok(()),
            Err(err) => return Err(err),
        };
        if canvases.is_empty() || canvases.len() > self.held.len() {
            return Err(EngineError::Inference(format!(
                "the back-end returned {} canvases for {} frames held",
                canvases.len(),
                self.held.len()
            )));
        }
        let elapsed = started.elapsed();
        let windows = source.window_stats().map(|now| {
            let delta = now.since(&self.windows_seen);
            self.windows_seen = now.clone();
            delta
        });
        let runs_model = source.runs_model();
        let shared = self.shared.clone();
        let latency_changed = {
            let mut state = shared.lock();
            if state.generator.epoch != epoch {
                return Ok(());
            }
            self.deliver(&mut state, canvases);
            if runs_model {
                gst::debug!(CAT, "chunk in {elapsed:?}");
                state.stats.chunks_run += 1;
                state.stats.chunk_time += elapsed;
                if let Some(windows) = &windows {
                    state.stats.windows.add(windows);
                }
            }
            shared.notify();
            runs_model && state.latency_changed()
        };
        if latency_changed && let Some(element) = self.element.upgrade() {
            let _ = element.post_message(gst::message::Latency::builder().src(&element).build());
        }
        Ok(())
    }

    /// Hands the canvases of the oldest held frames to the task.
    fn deliver(&mut self, state: &mut State, canvases: Vec<RgbImage>) {
        let channel = &mut state.generator;
        channel.in_flight = channel.in_flight.saturating_sub(canvases.len());
        for canvas in canvases {
            let (seq, _) = self
                .held
                .pop_front()
                .expect("checked against the frames held");
            channel.output.push_back((seq, canvas));
        }
        // Every frame handed over before the drain point has left.
        if channel.in_flight == 0 {
            channel.drain = false;
        }
    }

    /// Leaves the failure for the task, which posts it and stops the stream.
    fn fail(&mut self, err: EngineError) {
        gst::warning!(CAT, "the generator failed: {err}");
        self.failed = true;
        let mut state = self.shared.lock();
        state.generator.error = Some(err);
        self.shared.notify();
    }
}
