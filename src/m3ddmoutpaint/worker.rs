// SPDX-License-Identifier: MPL-2.0
//! The src-pad task of the element: it takes the items that the sink side
//! queued (frames, serialized events, drain points) in order, feeds the fill
//! back-end, runs its chunks with the state lock released, and pushes every
//! frame exactly once, in order, with the events that came between them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::FillMode;
use super::caps::StreamConfig;
use super::fill::{CanvasSource, FlatFill, FlatKind};
use super::frames::Compositor;
use super::imp::{CAT, M3ddmOutpaint};
use super::settings::Settings;
use crate::engine::{EngineError, Model, Ratio, RgbImage, StreamOutpainter};

/// The canvas of the flat fills (they need no model).
const FLAT_CANVAS: u32 = 256;
/// Frames the flat fills let the sink side queue ahead of the task.
const FLAT_QUEUE_FRAMES: usize = 2;
/// The framerate assumed for the latency of a variable-framerate (0/1) stream.
const FALLBACK_FPS: f64 = 30.0;

/// What one READY→PAUSED start runs with: the settings then, and the model.
pub struct RunContext {
    pub settings: Settings,
    pub aspect: Ratio,
    pub model: Option<Arc<Model>>,
}

impl RunContext {
    pub fn canvas(&self) -> u32 {
        self.model
            .as_ref()
            .map_or(FLAT_CANVAS, |model| model.canvas())
    }

    /// Frames held at most (queued or in the back-end) before the chain blocks.
    pub fn max_held(&self) -> usize {
        match self.model {
            Some(_) => self.settings.lookahead as usize,
            None => FLAT_QUEUE_FRAMES,
        }
    }

    pub fn provider(&self) -> &'static str {
        self.model
            .as_ref()
            .map_or("none", |model| model.provider_in_use())
    }

    fn new_source(&self, config: &StreamConfig) -> Result<Box<dyn CanvasSource>, EngineError> {
        Ok(match (self.settings.fill_mode, &self.model) {
            (FillMode::Outpaint, Some(model)) => Box::new(StreamOutpainter::new(
                model.clone(),
                self.settings.denoise_params(),
                config.canvas,
                config.fps().unwrap_or(FALLBACK_FPS),
                self.settings.lookahead as usize,
            )?),
            (FillMode::Color, _) => Box::new(FlatFill::new(
                config.canvas,
                FlatKind::Color(self.settings.fill_rgb()),
            )),
            _ => Box::new(FlatFill::new(config.canvas, FlatKind::Blur)),
        })
    }

    /// Own latency: the lookahead at the stream's framerate plus the processing time of a chunk.
    pub fn latency(&self, fps: Option<f64>, mean_chunk_time: Duration) -> gst::ClockTime {
        if self.model.is_none() {
            return gst::ClockTime::ZERO;
        }
        let lookahead = self.settings.lookahead as f64 / fps.unwrap_or(FALLBACK_FPS);
        gst::ClockTime::from_nseconds((lookahead * 1e9) as u64 + mean_chunk_time.as_nanos() as u64)
    }
}

/// A point where every frame queued before it leaves before anything after it.
pub enum DrainPoint {
    /// New input caps: the frames of the old caps leave, then the new configuration applies.
    Caps(Arc<StreamConfig>),
    /// SEGMENT, STREAM_START or EOS, forwarded after the drain.
    Event(gst::Event),
    /// A DRAIN query waiting for this id to be served.
    Query(u64),
}

/// What the sink side hands to the task, in stream order.
pub enum Item {
    /// An input buffer (held as it is) and its content image for the back-end.
    Frame {
        buffer: gst::Buffer,
        content: RgbImage,
    },
    /// A serialized event that keeps its place among the frames.
    Event(gst::Event),
    Drain(DrainPoint),
}

impl Item {
    /// A FLUSH keeps the items that describe the stream rather than its data.
    pub fn survives_flush(&self) -> bool {
        match self {
            Item::Drain(DrainPoint::Caps(_)) => true,
            Item::Drain(DrainPoint::Event(event)) | Item::Event(event) => {
                event.is_sticky()
                    && !matches!(event.type_(), gst::EventType::Segment | gst::EventType::Eos)
            }
            _ => false,
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub frames_in: u64,
    pub frames_out: u64,
    pub chunks_run: u64,
    pub chunk_time: Duration,
    /// Windows run by the back-ends of this run (those before a caps change included).
    pub windows_run: u64,
    pub window_time: Duration,
    /// The counters of the current back-end at its last chunk.
    backend_windows: (u64, Duration),
}

fn mean(total: Duration, count: u64) -> Duration {
    match u32::try_from(count) {
        Ok(0) | Err(_) => Duration::ZERO,
        Ok(count) => total / count,
    }
}

impl Stats {
    pub fn mean_chunk_time(&self) -> Duration {
        mean(self.chunk_time, self.chunks_run)
    }

    pub fn mean_window_time(&self) -> Duration {
        mean(self.window_time, self.windows_run)
    }

    /// Adds what the current back-end ran since it was last asked.
    fn add_windows(&mut self, (windows, time): (u64, Duration)) {
        let (seen_windows, seen_time) = self.backend_windows;
        self.windows_run += windows.saturating_sub(seen_windows);
        self.window_time += time.saturating_sub(seen_time);
        self.backend_windows = (windows, time);
    }

    /// A new back-end starts its counters at zero.
    fn new_backend(&mut self) {
        self.backend_windows = (0, Duration::ZERO);
    }
}

/// Shared by the sink side and the task; locked briefly, never across a push or a chunk.
pub struct State {
    pub queue: VecDeque<Item>,
    /// Frames queued or inside the task, not yet pushed.
    pub frames_held: usize,
    pub max_held: usize,
    /// Flushing at rest; the chain returns it.
    pub srcresult: Result<gst::FlowSuccess, gst::FlowError>,
    pub next_drain_query: u64,
    pub drained_query: u64,
    pub stats: Stats,
    pub fps: Option<f64>,
    pub reported_latency: Option<gst::ClockTime>,
    /// The execution provider of this run's model ("none" without one).
    pub provider: &'static str,
}

impl Default for State {
    fn default() -> Self {
        State {
            queue: VecDeque::new(),
            frames_held: 0,
            max_held: 1,
            srcresult: Err(gst::FlowError::Flushing),
            next_drain_query: 0,
            drained_query: 0,
            stats: Stats::default(),
            fps: None,
            reported_latency: None,
            provider: "none",
        }
    }
}

/// An entry waiting for its turn downstream behind the frames in the back-end.
enum Pending {
    Frame(gst::Buffer),
    Event(gst::Event),
}

/// The task's own state (only the task touches it while it runs).
#[derive(Default)]
pub struct TaskState {
    config: Option<Arc<StreamConfig>>,
    compositor: Option<Compositor>,
    source: Option<Box<dyn CanvasSource>>,
    pending: VecDeque<Pending>,
    caps_sent: bool,
}

impl TaskState {
    /// Drops the frames in flight (FLUSH), keeping the configuration.
    pub fn flush(&mut self) {
        self.pending.clear();
        if let Some(source) = self.source.as_mut() {
            source.reset();
        }
    }

    fn frames_pending(&self) -> usize {
        self.source.as_ref().map_or(0, |source| source.pending())
    }
}

/// Why the task stops.
pub enum Stop {
    /// A flow return (Flushing, EOS, or a downstream error).
    Flow(gst::FlowError),
    /// An error already posted as a message.
    Failed,
}

impl M3ddmOutpaint {
    /// One iteration of the src-pad task.
    pub(super) fn src_loop(&self) {
        if let Err(stop) = self.src_step() {
            self.stop_task(stop);
        }
    }

    fn stop_task(&self, stop: Stop) {
        let flow = match stop {
            Stop::Flow(flow) => flow,
            Stop::Failed => gst::FlowError::Error,
        };
        {
            let mut state = self.state.lock().unwrap();
            if state.srcresult != Err(gst::FlowError::Flushing) {
                state.srcresult = Err(flow);
            }
            self.cond.notify_all();
        }
        gst::debug!(CAT, imp = self, "pausing the task: {flow:?}");
        let _ = self.srcpad.pause_task();
        if matches!(
            stop,
            Stop::Flow(gst::FlowError::Flushing | gst::FlowError::Eos)
        ) {
            return;
        }
        if let Stop::Flow(flow) = stop {
            gst::element_imp_error!(
                self,
                gst::StreamError::Failed,
                ("Internal data flow error."),
                ["streaming task paused, reason {flow:?}"]
            );
        }
        self.srcpad.push_event(gst::event::Eos::new());
    }

    fn src_step(&self) -> Result<(), Stop> {
        let mut task = self.task.lock().unwrap();
        if task
            .source
            .as_ref()
            .is_some_and(|source| source.chunk_ready())
        {
            return self.run_chunk(&mut task, false);
        }
        let item = {
            let mut state = self.state.lock().unwrap();
            loop {
                state.srcresult.map_err(Stop::Flow)?;
                if let Some(item) = state.queue.pop_front() {
                    break Some(item);
                }
                // The chain waits for room and nothing else will come: run what is held.
                if state.frames_held >= state.max_held && task.frames_pending() > 0 {
                    break None;
                }
                state = self.cond.wait(state).unwrap();
            }
        };
        match item {
            None => self.run_chunk(&mut task, true),
            Some(Item::Frame { buffer, content }) => {
                let Some(source) = task.source.as_mut() else {
                    gst::element_imp_error!(
                        self,
                        gst::CoreError::Negotiation,
                        ("a frame arrived before its caps")
                    );
                    return Err(Stop::Failed);
                };
                source.push(content).map_err(|err| self.engine_error(err))?;
                task.pending.push_back(Pending::Frame(buffer));
                Ok(())
            }
            Some(Item::Event(event)) => {
                if task.pending.is_empty() {
                    self.srcpad.push_event(event);
                } else {
                    task.pending.push_back(Pending::Event(event));
                }
                Ok(())
            }
            Some(Item::Drain(point)) => {
                if let Err(stop) = self.drain(&mut task) {
                    // Interrupted (a flush): new caps must still apply once the stream restarts.
                    let item = Item::Drain(point);
                    if item.survives_flush() {
                        self.state.lock().unwrap().queue.push_front(item);
                    }
                    return Err(stop);
                }
                self.at_drain_point(&mut task, point)
            }
        }
    }

    /// Runs the back-end until every frame it holds has left, then the events after them.
    fn drain(&self, task: &mut TaskState) -> Result<(), Stop> {
        while task.frames_pending() > 0 {
            self.run_chunk(task, true)?;
        }
        self.push_leading_events(task);
        Ok(())
    }

    fn at_drain_point(&self, task: &mut TaskState, point: DrainPoint) -> Result<(), Stop> {
        match point {
            DrainPoint::Caps(config) => self.configure(task, config),
            DrainPoint::Event(event) => {
                let is_eos = event.type_() == gst::EventType::Eos;
                self.srcpad.push_event(event);
                if is_eos {
                    Err(Stop::Flow(gst::FlowError::Eos))
                } else {
                    Ok(())
                }
            }
            DrainPoint::Query(id) => {
                let mut state = self.state.lock().unwrap();
                state.drained_query = state.drained_query.max(id);
                self.cond.notify_all();
                Ok(())
            }
        }
    }

    /// Applies new caps: compositor and back-end for the new geometry.
    fn configure(&self, task: &mut TaskState, config: Arc<StreamConfig>) -> Result<(), Stop> {
        let Some(run) = self.run.lock().unwrap().clone() else {
            return Err(Stop::Flow(gst::FlowError::Flushing));
        };
        let compositor = Compositor::new(&config, run.settings.feather).map_err(|err| {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("{err}"));
            Stop::Failed
        })?;
        let source = run
            .new_source(&config)
            .map_err(|err| self.engine_error(err))?;
        gst::debug!(
            CAT,
            imp = self,
            "configured for {:?}, output {:?}",
            config.canvas,
            config.output
        );
        task.compositor = Some(compositor);
        task.source = Some(source);
        self.state.lock().unwrap().stats.new_backend();
        task.config = Some(config);
        // Sent now so that the events after the caps (SEGMENT) keep their order;
        // if downstream refuses them, the next frame tries again and fails.
        task.caps_sent = self.send_caps(task).is_ok();
        self.update_latency(&run);
        Ok(())
    }

    fn send_caps(&self, task: &TaskState) -> Result<(), Stop> {
        let config = task
            .config
            .as_ref()
            .expect("caps are sent only with a configuration");
        if self
            .srcpad
            .push_event(gst::event::Caps::new(&config.out_caps))
        {
            return Ok(());
        }
        let flushing = self.srcpad.pad_flags().contains(gst::PadFlags::FLUSHING);
        Err(Stop::Flow(if flushing {
            gst::FlowError::Flushing
        } else {
            gst::FlowError::NotNegotiated
        }))
    }

    /// Runs one chunk of the back-end (the lock on `State` released) and pushes its frames.
    fn run_chunk(&self, task: &mut TaskState, draining: bool) -> Result<(), Stop> {
        let Some(source) = task.source.as_mut() else {
            return Ok(());
        };
        let started = Instant::now();
        let canvases = match source.run_next(draining, &self.cancel) {
            Ok(canvases) => canvases,
            Err(EngineError::Cancelled) => return Err(Stop::Flow(gst::FlowError::Flushing)),
            Err(err) => return Err(self.engine_error(err)),
        };
        if canvases.is_empty() && draining {
            gst::element_imp_error!(
                self,
                gst::LibraryError::Failed,
                ("the engine returned no frame while draining")
            );
            return Err(Stop::Failed);
        }
        if source.runs_model() {
            let mut state = self.state.lock().unwrap();
            state.stats.chunks_run += 1;
            state.stats.chunk_time += started.elapsed();
            if let Some(windows) = source.window_stats() {
                state.stats.add_windows(windows);
            }
            gst::debug!(
                CAT,
                imp = self,
                "chunk of {} frames in {:?}",
                canvases.len(),
                started.elapsed()
            );
        }
        for canvas in canvases {
            self.push_frame(task, &canvas)?;
        }
        self.push_leading_events(task);
        if let Some(run) = self.run.lock().unwrap().clone() {
            self.update_latency(&run);
        }
        Ok(())
    }

    /// Pushes the events queued before the next frame, then that frame with `canvas`.
    fn push_frame(&self, task: &mut TaskState, canvas: &RgbImage) -> Result<(), Stop> {
        self.push_leading_events(task);
        let Some(Pending::Frame(input)) = task.pending.pop_front() else {
            gst::element_imp_error!(
                self,
                gst::LibraryError::Failed,
                ("the engine returned more frames than it was given")
            );
            return Err(Stop::Failed);
        };
        let compositor = task
            .compositor
            .as_ref()
            .expect("a back-end exists only with its compositor");
        let output = compositor.compose(canvas, &input).map_err(|err| {
            gst::element_imp_error!(self, gst::StreamError::Failed, ("{err}"));
            Stop::Failed
        })?;
        drop(input);
        if !task.caps_sent {
            self.send_caps(task)?;
            task.caps_sent = true;
        }
        let pushed = self.srcpad.push(output);
        {
            let mut state = self.state.lock().unwrap();
            state.frames_held = state.frames_held.saturating_sub(1);
            state.stats.frames_out += 1;
            self.cond.notify_all();
        }
        pushed.map(|_| ()).map_err(Stop::Flow)
    }

    fn push_leading_events(&self, task: &mut TaskState) {
        while let Some(Pending::Event(_)) = task.pending.front() {
            if let Some(Pending::Event(event)) = task.pending.pop_front() {
                self.srcpad.push_event(event);
            }
        }
    }

    /// Posts an engine failure as an error message naming it.
    fn engine_error(&self, err: EngineError) -> Stop {
        match err {
            EngineError::Cancelled => return Stop::Flow(gst::FlowError::Flushing),
            EngineError::Model(msg) => {
                gst::element_imp_error!(self, gst::ResourceError::Read, ("{msg}"))
            }
            EngineError::Runtime(msg) => {
                gst::element_imp_error!(self, gst::LibraryError::Init, ("{msg}"))
            }
            EngineError::InvalidInput(msg) => {
                gst::element_imp_error!(self, gst::LibraryError::Settings, ("{msg}"))
            }
            EngineError::Inference(msg) => {
                gst::element_imp_error!(self, gst::LibraryError::Failed, ("{msg}"))
            }
        }
        Stop::Failed
    }

    /// Posts a LATENCY message when the own latency moved by more than a tenth.
    pub(super) fn update_latency(&self, run: &RunContext) {
        let changed = {
            let mut state = self.state.lock().unwrap();
            let latency = run.latency(state.fps, state.stats.mean_chunk_time());
            let changed = match state.reported_latency {
                None => true,
                Some(old) => latency.nseconds().abs_diff(old.nseconds()) * 10 > old.nseconds(),
            };
            if changed {
                state.reported_latency = Some(latency);
            }
            changed
        };
        if changed {
            gst::debug!(
                CAT,
                imp = self,
                "latency changed, posting a latency message"
            );
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
    }

    /// Stops everything that waits: the chain, the task, a chunk in flight.
    pub(super) fn set_flushing(&self) {
        let mut state = self.state.lock().unwrap();
        state.srcresult = Err(gst::FlowError::Flushing);
        self.cancel.store(true, Ordering::SeqCst);
        self.cond.notify_all();
    }

    /// Drops every held frame and queued item (FLUSH_STOP, PAUSED→READY) and
    /// makes the stream ready to flow again.
    pub(super) fn reset_stream(&self, keep_stream_items: bool) {
        let mut task = self.task.lock().unwrap();
        task.flush();
        let mut state = self.state.lock().unwrap();
        if keep_stream_items {
            state.queue.retain(Item::survives_flush);
        } else {
            state.queue.clear();
            *task = TaskState::default();
        }
        state.frames_held = 0;
        state.srcresult = Ok(gst::FlowSuccess::Ok);
        self.cancel.store(false, Ordering::SeqCst);
        self.cond.notify_all();
    }
}
