// SPDX-License-Identifier: MPL-2.0
//! What the sink side, the source-pad task and the generator share: one
//! `State` behind one mutex, with one condvar on which each side waits for the
//! others. Items flow sink → task (`queue`), frames task → generator
//! (`generator.input`) and canvases generator → task (`generator.output`).
//! The lock is held briefly, never across a push downstream or a chunk.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::config::{OutputShape, StreamConfig};
use super::frames::{Compositor, ContentScaler};
use super::progress::Progress;
pub use super::run_context::RunContext;
use super::run_context::RunningElement;
use crate::engine::limits::FALLBACK_FPS;
use crate::engine::stream::StreamStats;
use crate::engine::{self, EngineError, RgbImage};

/// The state and the condvar that signals every change of it.
#[derive(Default)]
pub struct Shared {
    state: Mutex<State>,
    pub cond: Condvar,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a change (or `timeout`), releasing the lock meanwhile.
    pub fn wait<'a>(
        &self,
        guard: MutexGuard<'a, State>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, State> {
        match timeout {
            None => self
                .cond
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner),
            Some(timeout) => {
                self.cond
                    .wait_timeout(guard, timeout)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        }
    }

    pub fn notify(&self) {
        self.cond.notify_all();
    }
}

/// A configuration of the stream and the pads of its outputs (in its order).
pub struct Configured {
    pub config: StreamConfig,
    pub pads: Vec<gst::Pad>,
    /// The input caps and each pad's shape it was made from (to renegotiate an output).
    pub in_caps: gst::Caps,
    pub shapes: Vec<OutputShape>,
}

/// A point where every frame queued before it leaves before anything after it.
pub enum DrainPoint {
    /// New input caps (or a new set of outputs): the frames of the old
    /// configuration leave, then the new one applies.
    Caps(Arc<Configured>),
    /// SEGMENT, STREAM_START or EOS, forwarded after the drain.
    Event(gst::Event),
    /// A DRAIN query waiting for this id to be served.
    Query(u64),
}

/// What the sink side hands to the task, in stream order.
pub enum Item {
    /// An input buffer (held as it is), its content image for the back-end,
    /// its square for the scene-cut detector, and when it arrived.
    Frame {
        buffer: gst::Buffer,
        content: RgbImage,
        cut_image: Option<RgbImage>,
        arrived: Instant,
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

/// An entry of the output order: a frame waiting for its canvas, or an event
/// waiting for the frames before it.
pub enum Pending {
    Frame(PendingFrame),
    Event(gst::Event),
}

/// A frame waiting for its canvas.
pub struct PendingFrame {
    pub seq: u64,
    pub buffer: gst::Buffer,
    /// When it entered the element.
    pub arrived: Instant,
    /// Its content image, kept when frames have a deadline (for the blur fill
    /// of a frame whose canvas comes too late).
    pub content: Option<Arc<RgbImage>>,
}

/// What the generator is asked to do, in order.
pub enum GenInput {
    /// New caps: a new fill back-end for this configuration (sent after a drain).
    Configure(Arc<Configured>),
    Frame {
        seq: u64,
        content: Arc<RgbImage>,
        /// Its square for the scene-cut detector, when cuts are looked for.
        cut_image: Option<RgbImage>,
        arrived: Instant,
    },
}

/// The hand-off between the task and the generator thread.
pub struct GeneratorChannel {
    pub input: VecDeque<GenInput>,
    /// Canvases in frame order, with the sequence number of their frame.
    pub output: VecDeque<(u64, RgbImage)>,
    /// Run whatever is held, even less than a chunk (a drain point, EOS).
    pub drain: bool,
    /// Frames handed to the generator and not yet in `output`.
    pub in_flight: usize,
    /// A failure the task reports (then the stream stops).
    pub error: Option<EngineError>,
    /// Set by a flush or a stop; a chunk in flight checks it before every model call.
    pub cancel: Arc<engine::Cancel>,
    /// Bumped by every flush: the generator drops what it held.
    pub epoch: u64,
    /// Set when the generator thread must end.
    pub shutdown: bool,
    /// Sequence numbers of the frames that start a new shot, oldest first.
    pub cuts: VecDeque<u64>,
    /// The back-end's count of windows finished, live.
    pub windows_done: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// Frames up to this one left without their canvas: not worth generating.
    pub abandoned_through: Option<u64>,
}

impl Default for GeneratorChannel {
    fn default() -> Self {
        GeneratorChannel {
            input: VecDeque::new(),
            output: VecDeque::new(),
            drain: false,
            in_flight: 0,
            error: None,
            cancel: Arc::new(engine::Cancel::new()),
            epoch: 0,
            shutdown: false,
            cuts: VecDeque::new(),
            windows_done: None,
            abandoned_through: None,
        }
    }
}

impl GeneratorChannel {
    /// Drops every frame in flight and starts a new epoch with a fresh cancel flag.
    pub fn flush(&mut self) {
        self.cancel.request();
        self.cancel = Arc::new(engine::Cancel::new());
        self.input
            .retain(|input| matches!(input, GenInput::Configure(_)));
        self.output.clear();
        self.cuts.clear();
        self.abandoned_through = None;
        self.drain = false;
        self.in_flight = 0;
        self.epoch += 1;
    }
}

/// One output of the current configuration: its pad and compositor.
pub struct OutputSink {
    pub pad: gst::Pad,
    pub out_caps: gst::Caps,
    pub compositor: Arc<Compositor>,
    /// The output caps are still to be sent (downstream refused them so far).
    pub caps_pending: bool,
    /// Downstream's pool, which output frames are written into, when it offered one.
    pub pool: Option<gst::BufferPool>,
    /// What downstream last asked for mid-stream that could not be followed
    /// (warned about once, not at each RECONFIGURE that repeats it).
    pub unfollowed: Option<String>,
}

/// Counters of a run, for the `stats` property.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub frames_in: u64,
    pub frames_out: u64,
    pub chunks_run: u64,
    pub chunk_time: Duration,
    /// Frames that left with a generated canvas, and with the blur fill because theirs was late.
    pub frames_generated: u64,
    pub frames_degraded: u64,
    /// Frames that start a new shot (scene cuts found).
    pub scene_cuts: u64,
    /// Chunks run early because no frame arrived for `stall-timeout`.
    pub stalls: u64,
    /// Windows run, their time, and how many on each device.
    pub windows: StreamStats,
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
        mean(self.windows.window_time, self.windows.windows_run)
    }
}

/// Everything the three sides share while the element runs.
pub struct State {
    /// Set at READY→PAUSED, dropped at PAUSED→READY.
    pub run: Option<Arc<RunContext>>,
    /// Scales input frames to the canvas content box (the current input caps).
    pub scaler: Option<Arc<ContentScaler>>,
    /// Items from the sink side, in stream order.
    pub queue: VecDeque<Item>,
    /// Entries taken from `queue` by the task, waiting for their turn downstream.
    pub pending: VecDeque<Pending>,
    /// A drain point the task serves once every pending entry has left.
    pub waiting_drain: Option<DrainPoint>,
    /// The configuration the task applied last (kept across flushes).
    pub configured: Option<Arc<Configured>>,
    /// Its outputs, less the pads released since.
    pub outputs: Vec<OutputSink>,
    pub generator: GeneratorChannel,
    /// The generator thread of this run (joined at PAUSED→READY).
    pub generator_thread: Option<std::thread::JoinHandle<()>>,
    /// Sequence number of the next frame the task takes.
    pub next_seq: u64,
    /// Frames queued, in the generator or pending, not yet pushed.
    pub frames_held: usize,
    pub max_held: usize,
    /// Flushing at rest; the chain returns it.
    pub srcresult: Result<gst::FlowSuccess, gst::FlowError>,
    pub next_drain_query: u64,
    pub drained_query: u64,
    /// An EOS from upstream is queued and has not left yet (the task clears it as it stops).
    pub eos_pending: bool,
    pub stats: Stats,
    pub fps: Option<f64>,
    /// The warning that a PQ/HLG input's canvas is seen as SDR was posted (once a run).
    pub told_sdr_canvas: bool,
    pub reported_latency: Option<gst::ClockTime>,
    /// The progress messages of a stream of known length.
    pub progress: Progress,
    /// When frames must leave, and the state of a degraded episode.
    pub deadlines: Deadlines,
    /// When a frame last arrived or left (the stall timer counts from it).
    pub last_activity: Instant,
    /// The task is pushing a frame downstream (a blocked push is no stall).
    pub pushing: bool,
    /// The stall warning of this run was posted.
    pub stall_warned: bool,
    /// This run counted among the running elements (none at rest; dropped with the run's state).
    pub _running: Option<RunningElement>,
}

/// Live safety: every frame leaves by its deadline (`max-latency`), with the
/// blur fill when its canvas is late, and so do the frames downstream reports
/// late through QoS (a live source faster than the model).
#[derive(Debug, Default)]
pub struct Deadlines {
    /// How long a frame may stay in the element (`max-latency`, or the
    /// reported latency in a live pipeline); `None`: as long as it takes.
    pub bound: Option<Duration>,
    /// Frames whose running time is up to this are late downstream (QoS).
    pub late_until: Option<gst::ClockTime>,
    /// Inside an episode of degraded frames (announced once, at its start).
    pub degrading: bool,
}

impl Deadlines {
    /// How much earlier than its deadline a frame is sent, for the time its
    /// composition and push take.
    pub fn margin(&self) -> Duration {
        self.bound
            .map_or(Duration::ZERO, |b| (b / 10).min(Duration::from_millis(100)))
    }

    /// When the frame that arrived at `arrived` must be sent.
    pub fn due(&self, arrived: Instant) -> Option<Instant> {
        self.bound
            .map(|bound| arrived + bound.saturating_sub(self.margin()))
    }
}

impl Default for State {
    fn default() -> Self {
        State {
            run: None,
            scaler: None,
            queue: VecDeque::new(),
            pending: VecDeque::new(),
            waiting_drain: None,
            configured: None,
            outputs: Vec::new(),
            generator: GeneratorChannel::default(),
            generator_thread: None,
            next_seq: 0,
            frames_held: 0,
            max_held: 1,
            srcresult: Err(gst::FlowError::Flushing),
            next_drain_query: 0,
            drained_query: 0,
            eos_pending: false,
            stats: Stats::default(),
            fps: None,
            told_sdr_canvas: false,
            reported_latency: None,
            progress: Progress::default(),
            deadlines: Deadlines::default(),
            last_activity: Instant::now(),
            pushing: false,
            stall_warned: false,
            _running: None,
        }
    }
}

impl State {
    /// The state of a new run.
    pub fn started(run: Arc<RunContext>) -> State {
        State {
            max_held: run.max_held(),
            run: Some(run),
            _running: Some(RunningElement::new()),
            ..State::default()
        }
    }

    /// Stops everything that waits: the chain, the task, a chunk in flight.
    pub fn set_flushing(&mut self) {
        self.srcresult = Err(gst::FlowError::Flushing);
        self.generator.cancel.request();
    }

    /// Drops every held frame (FLUSH_STOP): the items that describe the stream
    /// (caps, sticky events) stay queued, a drain point waiting for caps is
    /// queued again, and the stream flows again.
    pub fn flush(&mut self) {
        self.queue.retain(Item::survives_flush);
        if let Some(point) = self.waiting_drain.take() {
            let item = Item::Drain(point);
            if item.survives_flush() {
                self.queue.push_front(item);
            }
        }
        self.pending.clear();
        self.generator.flush();
        self.frames_held = 0;
        self.eos_pending = false;
        self.pushing = false;
        self.last_activity = Instant::now();
        self.srcresult = Ok(gst::FlowSuccess::Ok);
    }

    /// The `stats` property.
    pub fn stats_structure(&self) -> gst::Structure {
        let provider = self
            .run
            .as_ref()
            .map_or("none".to_owned(), |run| run.provider());
        // The stride list only means something where the model generates frames.
        let strides = self
            .run
            .as_ref()
            .filter(|run| run.generates())
            .map_or(String::new(), |run| run.strides.to_string());
        let windows = &self.stats.windows;
        gst::Structure::builder("m3ddmoutpaint-stats")
            .field("frames-in", self.stats.frames_in)
            .field("frames-out", self.stats.frames_out)
            .field("frames-queued", self.frames_held as u64)
            .field("windows-run", windows.windows_run)
            .field(
                "windows-per-device",
                gst::Array::new(windows.windows_by_worker.iter().copied()),
            )
            .field(
                "mean-window-time",
                self.stats.mean_window_time().as_nanos() as u64,
            )
            .field("chunks-run", self.stats.chunks_run)
            .field("frames-generated", self.stats.frames_generated)
            .field("frames-degraded", self.stats.frames_degraded)
            .field(
                "mean-chunk-time",
                self.stats.mean_chunk_time().as_nanos() as u64,
            )
            .field("scene-cuts", self.stats.scene_cuts)
            .field("stalls", self.stats.stalls)
            .field("provider", provider)
            .field("strides", strides)
            .field("transfer-bytes", windows.transfer_bytes)
            .field(
                "transfer-bytes-per-window",
                windows
                    .transfer_bytes
                    .checked_div(windows.windows_run)
                    .unwrap_or(0),
            )
            .build()
    }

    /// The element's own latency now: `max-latency` when set, else the lookahead
    /// and the processing time of a chunk.
    pub fn own_latency(&self) -> gst::ClockTime {
        self.run
            .as_ref()
            .map_or(gst::ClockTime::ZERO, |run| match run.settings.max_latency {
                0 => run.latency(self.fps, self.stats.mean_chunk_time()),
                max => gst::ClockTime::from_nseconds(max),
            })
    }

    /// Sets the frames' deadline: `max-latency`, when it is set and frames wait
    /// for the model (a flat fill is never late). In a live pipeline without
    /// it, frames keep to the latency the element reports through QoS: the
    /// frames downstream reports late leave with the blur fill.
    pub fn refresh_deadline(&mut self) {
        let max_latency = self
            .run
            .as_ref()
            .filter(|run| run.generates())
            .map_or(0, |run| run.settings.max_latency);
        self.deadlines.bound = (max_latency > 0).then(|| Duration::from_nanos(max_latency));
        // Frames wait up to their deadline: hold as many as arrive meanwhile,
        // so that a live source never waits for the element.
        let base = self.run.as_ref().map_or(1, |run| run.max_held());
        self.max_held = match self.deadlines.bound {
            Some(bound) => {
                let fps = self.fps.unwrap_or(FALLBACK_FPS);
                base.max((bound.as_secs_f64() * fps).ceil() as usize + 2)
            }
            None => base,
        };
    }

    /// When the frames held run as a chunk for want of input: `stall-timeout`
    /// after a frame last arrived or left, unless a push is blocked downstream
    /// or an EOS (which runs them anyway) is queued.
    pub fn stall_deadline(&self) -> Option<Instant> {
        let timeout = self.run.as_ref()?.stall_timeout()?;
        (!self.pushing && !self.eos_pending).then(|| self.last_activity + timeout)
    }

    /// Records the own latency and says whether it moved by more than a tenth
    /// since it was last reported (then a LATENCY message is due).
    pub fn latency_changed(&mut self) -> bool {
        let latency = self.own_latency();
        let changed = match self.reported_latency {
            None => true,
            Some(old) => latency.nseconds().abs_diff(old.nseconds()) * 10 > old.nseconds(),
        };
        if changed {
            self.reported_latency = Some(latency);
            self.refresh_deadline();
        }
        changed
    }
}
