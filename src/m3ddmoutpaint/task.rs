// SPDX-License-Identifier: MPL-2.0
//! The source-pad task: it takes the items the sink side queued (frames,
//! serialized events, drain points) in order, hands the frames to the
//! generator, and pushes every frame exactly once, in order, composited with
//! its canvas, with the events that came between them. A drain point (caps,
//! SEGMENT, EOS, a DRAIN query) waits until every frame before it has left.
//! The task keeps nothing of its own: a flush stops it and starts a new one.

use std::sync::Arc;

use gst::glib;
use gst::prelude::*;

use super::CAT;
use super::errors::{engine_error_message, post_flow_error};
use super::frames::Compositor;
use super::state::{DrainPoint, GenInput, Item, OutputConfig, Pending, Shared};
use crate::engine::{EngineError, RgbImage};

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
    },
    Drain(DrainPoint),
}

pub struct SrcTask {
    element: glib::WeakRef<gst::Element>,
    srcpad: gst::Pad,
    shared: Arc<Shared>,
}

impl SrcTask {
    /// Starts the task on `srcpad`.
    pub fn start(
        element: &gst::Element,
        srcpad: &gst::Pad,
        shared: &Arc<Shared>,
    ) -> Result<(), glib::BoolError> {
        let mut task = SrcTask {
            element: element.downgrade(),
            srcpad: srcpad.clone(),
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
                self.srcpad.push_event(event);
                Ok(())
            }
            Action::Frame { buffer, canvas } => self.push_frame(element, buffer, &canvas),
            Action::Drain(point) => self.at_drain_point(element, point),
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
            // The head of the output order, when it can leave.
            match state.pending.front() {
                Some(Pending::Event(_)) => {
                    if let Some(Pending::Event(event)) = state.pending.pop_front() {
                        return Ok(Action::Event(event));
                    }
                }
                Some(Pending::Frame { seq, .. })
                    if state
                        .generator
                        .output
                        .front()
                        .is_some_and(|(s, _)| s == seq) =>
                {
                    let (_, canvas) = state.generator.output.pop_front().expect("checked");
                    if let Some(Pending::Frame { buffer, .. }) = state.pending.pop_front() {
                        return Ok(Action::Frame { buffer, canvas });
                    }
                }
                _ => {}
            }
            if state.pending.is_empty()
                && let Some(point) = state.waiting_drain.take()
            {
                return Ok(Action::Drain(point));
            }
            if state.waiting_drain.is_none()
                && let Some(item) = state.queue.pop_front()
            {
                match item {
                    Item::Frame { buffer, content } => {
                        let seq = state.next_seq;
                        state.next_seq += 1;
                        state.pending.push_back(Pending::Frame { seq, buffer });
                        state
                            .generator
                            .input
                            .push_back(GenInput::Frame { seq, content });
                        state.generator.in_flight += 1;
                        self.shared.notify();
                    }
                    Item::Event(event) => state.pending.push_back(Pending::Event(event)),
                    Item::Drain(point) => {
                        if state.generator.in_flight > 0 {
                            state.generator.drain = true;
                            self.shared.notify();
                        }
                        state.waiting_drain = Some(point);
                    }
                }
                continue;
            }
            state = self.shared.wait(state, None);
        }
    }

    fn at_drain_point(&self, element: &gst::Element, point: DrainPoint) -> Result<(), Stop> {
        match point {
            DrainPoint::Caps(config) => {
                let settings_feather = {
                    let state = self.shared.lock();
                    state.run.as_ref().map(|run| run.settings.feather)
                };
                let Some(feather) = settings_feather else {
                    return Err(Stop::Flow(gst::FlowError::Flushing));
                };
                let compositor = Compositor::new(&config, feather).map_err(|err| {
                    gst::element_error!(element, gst::CoreError::Negotiation, ("{err}"));
                    Stop::Failed
                })?;
                gst::debug!(
                    CAT,
                    obj = element,
                    "configured for {:?}, output {:?}",
                    config.canvas,
                    config.output
                );
                let caps_sent = self.send_caps(&config.out_caps).is_ok();
                let latency_changed = {
                    let mut state = self.shared.lock();
                    state.output = Some(OutputConfig {
                        config: config.clone(),
                        compositor: Arc::new(compositor),
                        caps_pending: !caps_sent,
                    });
                    state.generator.input.push_back(GenInput::Configure(config));
                    self.shared.notify();
                    state.latency_changed()
                };
                if latency_changed {
                    let _ =
                        element.post_message(gst::message::Latency::builder().src(element).build());
                }
                Ok(())
            }
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
                let mut state = self.shared.lock();
                state.drained_query = state.drained_query.max(id);
                self.shared.notify();
                Ok(())
            }
        }
    }

    /// Sends the output caps; an error (with the flow to stop with) when downstream refuses them.
    fn send_caps(&self, caps: &gst::Caps) -> Result<(), Stop> {
        if self.srcpad.push_event(gst::event::Caps::new(caps)) {
            return Ok(());
        }
        let flushing = self.srcpad.pad_flags().contains(gst::PadFlags::FLUSHING);
        Err(Stop::Flow(if flushing {
            gst::FlowError::Flushing
        } else {
            gst::FlowError::NotNegotiated
        }))
    }

    /// Composites `input` with its canvas and pushes it.
    fn push_frame(
        &self,
        element: &gst::Element,
        input: gst::Buffer,
        canvas: &RgbImage,
    ) -> Result<(), Stop> {
        let output = {
            let state = self.shared.lock();
            state.output.as_ref().map(|o| {
                (
                    o.compositor.clone(),
                    o.caps_pending,
                    o.config.out_caps.clone(),
                )
            })
        };
        let Some((compositor, caps_pending, out_caps)) = output else {
            gst::element_error!(
                element,
                gst::CoreError::Negotiation,
                ("a frame arrived before its caps")
            );
            return Err(Stop::Failed);
        };
        let composed = compositor.compose(canvas, &input).map_err(|err| {
            gst::element_error!(element, gst::StreamError::Failed, ("{err}"));
            Stop::Failed
        })?;
        drop(input);
        if caps_pending {
            self.send_caps(&out_caps)?;
            if let Some(output) = self.shared.lock().output.as_mut() {
                output.caps_pending = false;
            }
        }
        let pushed = self.srcpad.push(composed);
        {
            let mut state = self.shared.lock();
            state.frames_held = state.frames_held.saturating_sub(1);
            state.stats.frames_out += 1;
            self.shared.notify();
        }
        pushed.map(|_| ()).map_err(Stop::Flow)
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
            self.shared.notify();
        }
        gst::debug!(CAT, obj = element, "pausing the task: {flow:?}");
        let _ = self.srcpad.pause_task();
        match stop {
            Stop::Flow(gst::FlowError::Flushing | gst::FlowError::Eos) => return,
            Stop::Flow(flow) => post_flow_error(element, flow),
            Stop::Failed => {}
        }
        self.srcpad.push_event(gst::event::Eos::new());
    }
}
