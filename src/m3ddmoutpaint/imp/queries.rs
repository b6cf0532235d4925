// SPDX-License-Identifier: MPL-2.0
//! The element's answers to queries: caps negotiation in both directions
//! (the output's size follows from the input's and `aspect`), accept-caps,
//! allocation, drain, and latency (upstream's plus the lookahead held).

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::super::caps;
use super::super::config::OutputShape;
use super::super::outputpad::OutputPad;
use super::super::pools::answer_allocation;
use super::super::state::{DrainPoint, Item};
use super::M3ddmOutpaint;
use crate::m3ddmoutpaint::CAT;

impl M3ddmOutpaint {
    pub(super) fn sink_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        use gst::QueryViewMut;
        match query.view_mut() {
            QueryViewMut::Caps(q) => {
                let downstream = self.srcpad.peer_query_caps(None);
                let caps = self.caps_from_other_side(
                    &downstream,
                    gst::PadDirection::Src,
                    pad,
                    q.filter_owned(),
                );
                q.set_result(&caps);
                true
            }
            QueryViewMut::AcceptCaps(q) => {
                // Any fixed raw video in system memory is let through, so that a
                // format or size the element cannot handle gets an error naming it.
                let caps = q.caps();
                let accepted = caps.is_fixed()
                    && caps.structure(0).is_some_and(|s| s.name() == "video/x-raw")
                    && caps::accepted_features(caps.features(0));
                q.set_result(accepted);
                true
            }
            QueryViewMut::Allocation(q) => {
                let held = self.shared.lock().max_held;
                answer_allocation(q, u32::try_from(held).unwrap_or(u32::MAX));
                true
            }
            QueryViewMut::Drain(_) => self.sink_drain(),
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }

    pub(super) fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        use gst::QueryViewMut;
        match query.view_mut() {
            QueryViewMut::Caps(q) => {
                let caps = match pad.current_caps() {
                    Some(current) => match q.filter() {
                        Some(filter) => {
                            filter.intersect_with_mode(&current, gst::CapsIntersectMode::First)
                        }
                        None => current,
                    },
                    None => {
                        let upstream = self.sinkpad.peer_query_caps(None);
                        self.caps_from_other_side(
                            &upstream,
                            gst::PadDirection::Sink,
                            pad,
                            q.filter_owned(),
                        )
                    }
                };
                q.set_result(&caps);
                true
            }
            QueryViewMut::Latency(q) => {
                let mut upstream = gst::query::Latency::new();
                if !self.sinkpad.peer_query(&mut upstream) {
                    return false;
                }
                let (live, min, max) = upstream.result();
                let ours = self.own_latency();
                gst::debug!(
                    CAT,
                    imp = self,
                    "own latency {ours}, upstream {min} - {max:?}"
                );
                q.set(live, min + ours, max.map(|max| max + ours));
                true
            }
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }

    /// A DRAIN query returns once every frame queued before it has left.
    fn sink_drain(&self) -> bool {
        let mut state = self.shared.lock();
        state.next_drain_query += 1;
        let id = state.next_drain_query;
        if state.srcresult.is_err() {
            return true;
        }
        state.queue.push_back(Item::Drain(DrainPoint::Query(id)));
        self.shared.notify();
        while state.srcresult.is_ok() && state.drained_query < id {
            state = self.shared.wait(state, None);
        }
        true
    }

    fn own_latency(&self) -> gst::ClockTime {
        self.shared.lock().own_latency()
    }

    /// The caps this pad can take given the caps the other side offers (`direction`: the other pad's).
    fn caps_from_other_side(
        &self,
        other: &gst::Caps,
        direction: gst::PadDirection,
        pad: &gst::Pad,
        filter: Option<gst::Caps>,
    ) -> gst::Caps {
        let template = pad.pad_template_caps();
        let caps = if other.is_any() {
            template
        } else {
            let shape = self.shape_of(pad);
            let caps = caps::transform_caps(other, direction, shape)
                .intersect_with_mode(&template, gst::CapsIntersectMode::First);
            match direction {
                gst::PadDirection::Src => caps::with_interlaced_fields(caps),
                _ => caps,
            }
        };
        match filter {
            Some(filter) => filter.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
            None => caps,
        }
    }
}

impl M3ddmOutpaint {
    /// The shape of `pad`'s output: its own aspect for a request pad, the
    /// element's `aspect` or `expand` for `src` (9:16 while those are invalid).
    fn shape_of(&self, pad: &gst::Pad) -> OutputShape {
        let fallback = OutputShape::Aspect(crate::engine::Ratio { num: 9, den: 16 });
        match pad.downcast_ref::<OutputPad>() {
            Some(output) => output.aspect().map_or(fallback, OutputShape::Aspect),
            None => self
                .settings
                .lock()
                .unwrap()
                .output_shape()
                .unwrap_or(fallback),
        }
    }
}
