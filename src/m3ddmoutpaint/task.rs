// SPDX-License-Identifier: MPL-2.0
//! The source-pad task: it takes the items the sink side queued (frames,
//! serialized events, drain points) in order, hands the frames to the
//! generator, and pushes every frame exactly once, in order, composited with
//! its canvas on every output pad, with the events that came between them. A
//! drain point (caps, SEGMENT, EOS, a DRAIN query) waits until every frame
//! before it has left. Flow returns of the outputs combine as `tee`'s do: a
//! pad that is not linked stops nothing while another one is. It posts the
//! scene-cut and progress messages. The task keeps nothing of its own: a
//! flush stops it and starts a new one.

use std::sync::Arc;
use std::time::Instant;

use gst::glib;
use gst::prelude::*;

use super::CAT;
use super::errors::{engine_error_message, post_flow_error};
use super::flows::combine_flows;
use super::frames::Compositor;
use super::pools::downstream_pool;
use super::renegotiate;
use super::state::{
    Configured, DrainPoint, GenInput, Item, OutputSink, Pending, PendingFrame, Shared, State,
};
use crate::engine::pixels::blur_canvas;
use crate::engine::{EngineError, RgbImage};

/// The name of the element message posted at a scene cut.
pub const SCENE_CUT_MESSAGE: &str = "m3ddmoutpaint-scene-cut";

/// Why the task stops.
enum Stop {
    /// A flow return (Flushing, EOS, or a downstream error).
    Flow(gst::FlowError),
    /// An error already posted as a message.
    Failed,
}

/// One thing the task does with the lock released.
enum Action {
    Event(gst::Event),
    Frame {
        buffer: gst::Buffer,
        canvas: RgbImage,
        /// At a scene cut, the frame's number in the stream.
        cut: Option<u64>,
        /// The first frame of an episode of frames leaving with the blur fill.
        episode_starts: bool,
    },
    Drain(DrainPoint),
    Message(gst::Structure),
}

pub struct SrcTask {
    element: glib::WeakRef<gst::Element>,
    srcpad: gst::Pad,
    sinkpad: gst::Pad,
    shared: Arc<Shared>,
}

impl SrcTask {
    /// Starts the task on `srcpad` (the always pad; it pushes on every output).
    pub fn start(
        element: &gst::Element,
        srcpad: &gst::Pad,
        sinkpad: &gst::Pad,
        shared: &Arc<Shared>,
    ) -> Result<(), glib::BoolError> {
        let mut task = SrcTask {
            element: element.downgrade(),
            srcpad: srcpad.clone(),
            sinkpad: sinkpad.clone(),
            shared: shared.clone(),
        };
        srcpad.start_task(move || task.iterate())
    }

    fn iterate(&mut self) {
        let Some(element) = self.element.upgrade() else {
            let _ = self.srcpad.pause_task();
            return;
        };
        if let Err(stop) = self.step(&element) {
            self.stop(&element, stop);
        }
    }

    /// Waits for the next action and does it.
    fn step(&self, element: &gst::Element) -> Result<(), Stop> {
        match self.next_action()? {
            Action::Event(event) => {
                self.push_event(event);
                Ok(())
            }
            Action::Frame {
                buffer,
                canvas,
                cut,
                episode_starts,
            } => {
                if episode_starts {
                    gst::element_warning!(
                        element,
                        gst::CoreError::Clock,
                        ("Generation is behind: frames leave with the blur fill until it catches up"),
                        ["a frame's generated area was not ready by its deadline"]
                    );
                }
                if let Some(frame) = cut {
                    let pts = buffer.pts();
                    gst::info!(CAT, obj = element, "scene cut at {pts:?}");
                    let message = gst::Structure::builder(SCENE_CUT_MESSAGE)
                        .field("pts", pts.map_or(u64::MAX, |t| t.nseconds()))
                        .field("frame", frame)
                        .build();
                    let _ = element
                        .post_message(gst::message::Element::builder(message).src(element).build());
                }
                self.push_frame(element, buffer, &canvas)
            }
            Action::Drain(point) => self.at_drain_point(element, point),
            Action::Message(structure) => {
                let _ = element.post_message(
                    gst::message::Element::builder(structure)
                        .src(element)
                        .build(),
                );
                Ok(())
            }
        }
    }

    fn next_action(&self) -> Result<Action, Stop> {
        let mut state = self.shared.lock();
        loop {
            state.srcresult.map_err(Stop::Flow)?;
            if let Some(err) = state.generator.error.take() {
                drop(state);
                self.post_engine_error(&err);
                return Err(Stop::Failed);
            }
            if let Some(progress) = progress_due(&mut state) {
                return Ok(Action::Message(progress));
            }
            // The head of the output order, when it can leave.
            let now = Instant::now();
            match state.pending.front() {
                Some(Pending::Event(_)) => {
                    if let Some(Pending::Event(event)) = state.pending.pop_front() {
                        return Ok(Action::Event(event));
                    }
                }
                Some(Pending::Frame(frame)) => {
                    let seq = frame.seq;
                    // Canvases of frames that already left with the blur fill.
                    while state
                        .generator
                        .output
                        .front()
                        .is_some_and(|(s, _)| *s < seq)
                    {
                        state.generator.output.pop_front();
                    }
                    if state
                        .generator
                        .output
                        .front()
                        .is_some_and(|(s, _)| *s == seq)
                    {
                        let (_, canvas) = state.generator.output.pop_front().expect("checked");
                        return Ok(self.leave(&mut state, canvas, false));
                    }
                    if let Some(canvas) = self.degraded_canvas(&mut state, now) {
                        return Ok(self.leave(&mut state, canvas, true));
                    }
                }
                None => {}
            }
            if state.pending.is_empty()
                && let Some(point) = state.waiting_drain.take()
            {
                return Ok(Action::Drain(point));
            }
            if state.waiting_drain.is_none()
                && let Some(item) = state.queue.pop_front()
            {
                take_item(&mut state, item);
                self.shared.notify();
                continue;
            }
            let head_due = match state.pending.front() {
                Some(Pending::Frame(frame)) => state.deadlines.due(frame.arrived),
                _ => None,
            };
            let timeout = [
                state.progress.period(),
                head_due.map(|due| due.saturating_duration_since(now)),
            ]
            .into_iter()
            .flatten()
            .min();
            state = self.shared.wait(state, timeout);
        }
    }

    /// The head frame leaves with `canvas`: generated, or degraded (the blur
    /// fill, its canvas late; the generator drops it and the episode is
    /// announced at its first frame).
    fn leave(&self, state: &mut State, canvas: RgbImage, degraded: bool) -> Action {
        let Some(Pending::Frame(frame)) = state.pending.pop_front() else {
            unreachable!("called with a frame at the head");
        };
        let cut = (state.generator.cuts.front() == Some(&frame.seq)).then_some(frame.seq);
        if cut.is_some() {
            state.generator.cuts.pop_front();
        }
        if degraded {
            state.stats.frames_degraded += 1;
            state.generator.abandoned_through = Some(frame.seq);
            self.shared.notify();
        } else {
            state.stats.frames_generated += 1;
        }
        let episode_starts = degraded && !state.deadlines.degrading;
        state.deadlines.degrading = degraded;
        Action::Frame {
            buffer: frame.buffer,
            canvas,
            cut,
            episode_starts,
        }
    }

    /// The blur canvas of the head frame when it must leave now without its
    /// generated canvas: its deadline is near, or downstream reported it late.
    fn degraded_canvas(&self, state: &mut State, now: Instant) -> Option<RgbImage> {
        let Some(Pending::Frame(frame)) = state.pending.front() else {
            return None;
        };
        let content = frame.content.as_ref()?;
        let past_deadline = state
            .deadlines
            .due(frame.arrived)
            .is_some_and(|due| now >= due);
        let late_downstream = state.deadlines.late_until.is_some_and(|late| {
            self.running_time(&frame.buffer)
                .is_some_and(|running| running <= late)
        });
        if !(past_deadline || late_downstream) {
            return None;
        }
        let run = state.run.as_ref()?;
        if !run.generates() {
            return None;
        }
        let layout = state.configured.as_ref()?.config.canvas;
        Some(blur_canvas(content, &layout))
    }

    /// The running time of a buffer in the current input segment.
    fn running_time(&self, buffer: &gst::Buffer) -> Option<gst::ClockTime> {
        let segment = self.sinkpad.sticky_event::<gst::event::Segment>(0)?;
        let segment = segment.segment().downcast_ref::<gst::ClockTime>()?.clone();
        segment.to_running_time(buffer.pts()?)
    }

    fn at_drain_point(&self, element: &gst::Element, point: DrainPoint) -> Result<(), Stop> {
        match point {
            DrainPoint::Caps(configured) => self.configure(element, configured),
            DrainPoint::Event(event) => {
                let is_eos = event.type_() == gst::EventType::Eos;
                if is_eos && let Some(last) = self.closing_progress() {
                    let _ = element
                        .post_message(gst::message::Element::builder(last).src(element).build());
                }
                self.push_event(event);
                if is_eos {
                    Err(Stop::Flow(gst::FlowError::Eos))
                } else {
                    Ok(())
                }
            }
            DrainPoint::Query(id) => {
                let mut state = self.shared.lock();
                state.drained_query = state.drained_query.max(id);
                self.shared.notify();
                Ok(())
            }
        }
    }

    /// Applies a configuration: a compositor per output, the output caps sent
    /// (after the stream-start a new pad has not seen yet), a new back-end.
    fn configure(&self, element: &gst::Element, configured: Arc<Configured>) -> Result<(), Stop> {
        let settings = {
            let state = self.shared.lock();
            (state.run.as_ref()).map(|run| (run.settings.feather, run.converter_threads()))
        };
        let Some((feather, threads)) = settings else {
            return Err(Stop::Flow(gst::FlowError::Flushing));
        };
        let config = &configured.config;
        let mut outputs = Vec::with_capacity(config.outputs.len());
        for (pad, output) in configured.pads.iter().zip(&config.outputs) {
            let compositor =
                Compositor::new(&config.in_info, output, feather, threads).map_err(|err| {
                    gst::element_error!(element, gst::CoreError::Negotiation, ("{err}"));
                    Stop::Failed
                })?;
            self.join_stream(pad);
            let caps_sent = send_caps(pad, &output.out_caps).is_ok();
            if caps_sent
                && pad.sticky_event::<gst::event::Segment>(0).is_none()
                && let Some(segment) = self.sinkpad.sticky_event::<gst::event::Segment>(0)
            {
                pad.push_event(segment);
            }
            outputs.push(OutputSink {
                pad: pad.clone(),
                out_caps: output.out_caps.clone(),
                compositor: Arc::new(compositor),
                caps_pending: !caps_sent,
                pool: caps_sent
                    .then(|| downstream_pool(pad, &output.out_caps))
                    .flatten(),
                unfollowed: None,
            });
        }
        gst::debug!(
            CAT,
            obj = element,
            "configured for {:?}, {} output(s)",
            config.canvas,
            outputs.len()
        );
        let latency_changed = {
            let mut state = self.shared.lock();
            state.outputs = outputs;
            state.configured = Some(configured.clone());
            state
                .generator
                .input
                .push_back(GenInput::Configure(configured));
            self.shared.notify();
            state.latency_changed()
        };
        if latency_changed {
            let _ = element.post_message(gst::message::Latency::builder().src(element).build());
        }
        Ok(())
    }

    /// Gives a pad that joins a running stream (a new request pad) the stream's start.
    fn join_stream(&self, pad: &gst::Pad) {
        if pad.sticky_event::<gst::event::StreamStart>(0).is_none()
            && let Some(start) = self.sinkpad.sticky_event::<gst::event::StreamStart>(0)
        {
            pad.push_event(start);
        }
    }

    /// Pushes `event` on every output pad (the always pad when none is configured).
    fn push_event(&self, event: gst::Event) {
        let pads = self.output_pads();
        for pad in &pads {
            pad.push_event(event.clone());
        }
    }

    fn output_pads(&self) -> Vec<gst::Pad> {
        let state = self.shared.lock();
        if state.outputs.is_empty() {
            vec![self.srcpad.clone()]
        } else {
            state.outputs.iter().map(|o| o.pad.clone()).collect()
        }
    }

    /// Composites `input` with its canvas for every output and pushes it there.
    fn push_frame(
        &self,
        element: &gst::Element,
        input: gst::Buffer,
        canvas: &RgbImage,
    ) -> Result<(), Stop> {
        let pads: Vec<gst::Pad> = {
            let state = self.shared.lock();
            state.outputs.iter().map(|o| o.pad.clone()).collect()
        };
        if renegotiate::requested(&pads) {
            renegotiate::renegotiate(element, &self.shared);
        }
        type Output = (
            gst::Pad,
            Arc<Compositor>,
            Option<gst::Caps>,
            Option<gst::BufferPool>,
        );
        let outputs: Vec<Output> = {
            let mut state = self.shared.lock();
            state.pushing = true;
            state
                .outputs
                .iter()
                .map(|o| {
                    let pending = o.caps_pending.then(|| o.out_caps.clone());
                    (o.pad.clone(), o.compositor.clone(), pending, o.pool.clone())
                })
                .collect()
        };
        if outputs.is_empty() {
            gst::element_error!(
                element,
                gst::CoreError::Negotiation,
                ("a frame arrived before its caps")
            );
            return Err(Stop::Failed);
        }
        let mut flows = Vec::with_capacity(outputs.len());
        for (pad, compositor, pending_caps, pool) in &outputs {
            let composed = compositor
                .compose(canvas, &input, pool.as_ref())
                .map_err(|err| {
                    gst::element_error!(element, gst::StreamError::Failed, ("{err}"));
                    Stop::Failed
                })?;
            if let Some(caps) = pending_caps {
                send_caps(pad, caps)?;
                let mut state = self.shared.lock();
                if let Some(output) = state.outputs.iter_mut().find(|o| &o.pad == pad) {
                    output.caps_pending = false;
                }
            }
            flows.push((pad.clone(), pad.push(composed)));
        }
        drop(input);
        let flow = {
            let mut state = self.shared.lock();
            state.frames_held = state.frames_held.saturating_sub(1);
            state.stats.frames_out += 1;
            state.pushing = false;
            state.last_activity = Instant::now();
            self.shared.notify();
            let results: Vec<_> = flows
                .iter()
                .filter(|(pad, _)| state.outputs.iter().any(|o| &o.pad == pad))
                .map(|(_, flow)| *flow)
                .collect();
            combine_flows(&results)
        };
        flow.map(|_| ()).map_err(Stop::Flow)
    }

    fn post_engine_error(&self, err: &EngineError) {
        if let Some(element) = self.element.upgrade() {
            element.post_error_message(engine_error_message(err));
        }
    }

    /// Pauses the task; a failure stops the stream (upstream sees the flow
    /// return) and sends EOS downstream.
    fn stop(&self, element: &gst::Element, stop: Stop) {
        let flow = match stop {
            Stop::Flow(flow) => flow,
            Stop::Failed => gst::FlowError::Error,
        };
        {
            let mut state = self.shared.lock();
            if state.srcresult != Err(gst::FlowError::Flushing) {
                state.srcresult = Err(flow);
            }
            if flow == gst::FlowError::Eos {
                state.eos_pending = false;
            }
            self.shared.notify();
        }
        gst::debug!(CAT, obj = element, "pausing the task: {flow:?}");
        let _ = self.srcpad.pause_task();
        match stop {
            Stop::Flow(gst::FlowError::Flushing | gst::FlowError::Eos) => return,
            Stop::Flow(flow) => post_flow_error(element, flow),
            Stop::Failed => {}
        }
        self.push_event(gst::event::Eos::new());
    }
}

/// Moves one queued item into the output order (frames also to the generator).
fn take_item(state: &mut State, item: Item) {
    match item {
        Item::Frame {
            buffer,
            content,
            cut_image,
            arrived,
        } => {
            let seq = state.next_seq;
            state.next_seq += 1;
            let content = Arc::new(content);
            // A frame that may have to leave without its generated canvas keeps its content.
            let keep = state.deadlines.bound.is_some() || state.deadlines.late_until.is_some();
            state.pending.push_back(Pending::Frame(PendingFrame {
                seq,
                buffer,
                arrived,
                content: keep.then(|| content.clone()),
            }));
            state.generator.input.push_back(GenInput::Frame {
                seq,
                content,
                cut_image,
                arrived,
            });
            state.generator.in_flight += 1;
        }
        Item::Event(event) => state.pending.push_back(Pending::Event(event)),
        Item::Drain(point) => {
            if state.generator.in_flight > 0 {
                state.generator.drain = true;
            }
            state.waiting_drain = Some(point);
        }
    }
}

impl SrcTask {
    /// The closing progress message of a stream that ends.
    fn closing_progress(&self) -> Option<gst::Structure> {
        let mut state = self.shared.lock();
        let windows = live_windows(&state);
        let done = state.stats.frames_out;
        state.progress.finish(done, windows, Instant::now())
    }
}

/// The windows the back-end has finished, counted as they finish.
fn live_windows(state: &State) -> u64 {
    state.generator.windows_done.as_ref().map_or(0, |counter| {
        counter.load(std::sync::atomic::Ordering::Relaxed)
    })
}

/// The progress message due now, if any.
fn progress_due(state: &mut State) -> Option<gst::Structure> {
    let windows = live_windows(state);
    let done = state.stats.frames_out;
    state.progress.due(done, windows, Instant::now())
}

/// Sends the output caps on `pad`; an error (with the flow to stop with) when downstream refuses them.
fn send_caps(pad: &gst::Pad, caps: &gst::Caps) -> Result<(), Stop> {
    if pad.push_event(gst::event::Caps::new(caps)) {
        return Ok(());
    }
    let flushing = pad.pad_flags().contains(gst::PadFlags::FLUSHING);
    Err(Stop::Flow(if flushing {
        gst::FlowError::Flushing
    } else {
        gst::FlowError::NotNegotiated
    }))
}
