// SPDX-License-Identifier: MPL-2.0
//! The upstream side of a fuzz case: frames (with the segment upstream owes
//! before them), serialized events (markers, GAPs, caps, STREAM_START, EOS),
//! flushes and DRAIN queries, each with the answer the model says is due.

use std::sync::Arc;

use gst::prelude::*;

use super::super::common::{FRAME_NS, make_frame};
use super::super::model::{Fit, GAP_BASE_NS, MARKER, Sent, fit};
use super::super::script::{CapsSpec, SUPPORTED_FORMATS};
use super::super::workers::bus_errors;
use super::{BIG_FRAME_BYTES, BIG_FRAMES_PER_CAPS, Case, PushRecord};

impl Case {
    pub(super) fn push(&mut self, pts: bool, detach: bool) -> Result<(), String> {
        self.wait_idle()?;
        if self.run.is_none() {
            return Ok(());
        }
        self.send_segment(true)?;
        let (spec, info) = match (&self.caps, self.upstream_caps) {
            (Some((spec, info)), _) => (*spec, info.clone()),
            (None, Some(spec)) if spec.supported() => {
                let info = gst_video::VideoInfo::from_caps(&spec.caps()).unwrap();
                (spec, Arc::new(info))
            }
            _ => {
                let spec = CapsSpec {
                    format: "RGB",
                    width: 64,
                    height: 36,
                    par: (1, 1),
                    fps: (30, 1),
                };
                let info = gst_video::VideoInfo::from_caps(&spec.caps()).unwrap();
                (spec, Arc::new(info))
            }
        };
        if spec.frame_bytes() > BIG_FRAME_BYTES && self.frames_under_caps >= BIG_FRAMES_PER_CAPS {
            return Ok(());
        }
        let expect = if self.flushing {
            Err(gst::FlowError::Flushing)
        } else if self.eos {
            Err(gst::FlowError::Eos)
        } else if self.caps.is_none() {
            self.expect_errors(1, 1, Some("caps".into()));
            Err(gst::FlowError::NotNegotiated)
        } else {
            Ok(gst::FlowSuccess::Ok)
        };
        // A refused push is awaited: a flush that met it in flight would change its answer.
        let detach = detach && expect.is_ok();
        let id = self.next_id;
        self.next_id += 1;
        let mut input = make_frame(&info, id, 0);
        {
            let input = input.make_mut();
            input.set_pts(pts.then(|| gst::ClockTime::from_nseconds(self.next_pts)));
            input.set_offset(id);
        }
        self.next_pts += FRAME_NS;
        if expect.is_ok() {
            self.frames_under_caps += 1;
        }
        let pad = self.sinkpad.clone();
        let buffer = input.clone();
        let reply = self
            .upstream
            .start(format!("the push of frame {id}"), move || pad.chain(buffer));
        let record = PushRecord {
            id,
            input,
            info,
            expect,
            detached: detach,
        };
        if detach {
            self.in_flight = Some((reply, record));
            Ok(())
        } else {
            let flow = reply.wait(self.deadline)?;
            self.record_push(record, flow)
        }
    }

    /// Sends the segment upstream owes (after a start or a flush) once the
    /// element has caps, or before data even without (then upstream, which
    /// failed to negotiate, sends no caps after it).
    pub(super) fn send_segment(&mut self, without_caps: bool) -> Result<(), String> {
        if !(self.segment_due && self.ready() && (without_caps || self.caps.is_some())) {
            return Ok(());
        }
        let mut segment = gst::FormattedSegment::<gst::ClockTime>::new();
        let start = gst::ClockTime::from_nseconds(self.next_pts);
        segment.set_start(start);
        segment.set_time(start);
        segment.set_position(start);
        if !self.upstream_event(gst::event::Segment::new(&segment))? {
            return Err("the element refused a SEGMENT".into());
        }
        self.segment_due = false;
        Ok(())
    }

    pub(super) fn marker(&mut self) -> Result<(), String> {
        self.wait_idle()?;
        if self.run.is_none() {
            return Ok(());
        }
        self.send_segment(false)?;
        let id = self.next_marker;
        self.next_marker += 1;
        let structure = gst::Structure::builder(MARKER).field("id", id).build();
        self.serialized_marker(id, gst::event::CustomDownstream::new(structure))
    }

    pub(super) fn gap(&mut self) -> Result<(), String> {
        self.wait_idle()?;
        self.send_segment(false)?;
        if self.run.is_none() || self.segment_due {
            // No GAP before a segment.
            return Ok(());
        }
        let id = self.next_marker;
        self.next_marker += 1;
        let gap = gst::event::Gap::builder(gst::ClockTime::from_nseconds(GAP_BASE_NS + id))
            .duration(gst::ClockTime::from_nseconds(FRAME_NS))
            .build();
        self.serialized_marker(id, gap)
    }

    fn serialized_marker(&mut self, id: u64, event: gst::Event) -> Result<(), String> {
        let ready = self.ready();
        if self.upstream_event(event)? {
            self.checker.send(Sent::Marker(id));
        } else if ready {
            return Err(format!("the element refused marker {id}"));
        }
        Ok(())
    }

    pub(super) fn send_caps(&mut self, spec: CapsSpec) -> Result<(), String> {
        self.wait_idle()?;
        if self.run.is_none() {
            return Ok(());
        }
        let pad = &self.sinkpad;
        if pad.sticky_event::<gst::event::Segment>(0).is_some() && pad.current_caps().is_none() {
            // Upstream sent its segment without caps: it does not negotiate any more.
            return Ok(());
        }
        let ready = self.ready();
        let fits = match &self.run {
            Some(run) if spec.supported() => fit(run.shape(), &spec),
            _ => Fit::TooLarge,
        };
        let accepted = self.upstream_event(gst::event::Caps::new(&spec.caps()))?;
        if accepted {
            if ready && fits == Fit::TooLarge {
                return Err(format!("the element took caps it must refuse: {spec:?}"));
            }
            let info = gst_video::VideoInfo::from_caps(&spec.caps()).unwrap();
            self.caps = Some((spec, Arc::new(info)));
            self.upstream_caps = Some(spec);
            self.frames_under_caps = 0;
        } else if ready {
            if fits == Fit::Fits {
                return Err(format!(
                    "the element refused caps {spec:?}: {:?}",
                    bus_errors(&self.bus)
                ));
            }
            let word = if !SUPPORTED_FORMATS.contains(&spec.format) {
                spec.format.to_owned()
            } else if !spec.supported() {
                "2x2".to_owned()
            } else {
                "16384".to_owned()
            };
            self.expect_errors(1, 1, Some(word));
        } else {
            self.expect_errors(0, 1, None);
        }
        Ok(())
    }

    pub(super) fn stream_start(&mut self) -> Result<(), String> {
        self.wait_idle()?;
        if self.run.is_none() {
            return Ok(());
        }
        self.streams += 1;
        let ready = self.run.is_some() && !self.flushing;
        let start = gst::event::StreamStart::new(&format!("fuzz-stream-{}", self.streams));
        if !self.upstream_event(start)? {
            if ready {
                return Err("the element refused a STREAM_START".into());
            }
            return Ok(());
        }
        self.eos = false;
        self.segment_due = true;
        if let Some(spec) = self.upstream_caps {
            self.send_caps(spec)?;
        }
        self.send_segment(false)
    }

    pub(super) fn flush_start(&mut self) -> Result<(), String> {
        if self.run.is_none() {
            return Ok(());
        }
        // A second FLUSH_START finds the outputs flushing already: its answer does not matter.
        if !self.application_event(gst::event::FlushStart::new())? && !self.flushing {
            return Err("the element refused FLUSH_START".into());
        }
        self.flushing = true;
        Ok(())
    }

    pub(super) fn flush_stop(&mut self) -> Result<(), String> {
        self.wait_idle()?;
        if self.run.is_none() {
            return Ok(());
        }
        if !self.application_event(gst::event::FlushStop::new(true))? {
            return Err("the element refused FLUSH_STOP".into());
        }
        self.flushing = false;
        self.eos = false;
        self.boundary();
        self.segment_due = true;
        self.send_segment(false)
    }

    pub(super) fn eos(&mut self) -> Result<(), String> {
        self.wait_idle()?;
        if self.run.is_none() {
            return Ok(());
        }
        let ready = self.ready();
        if self.upstream_event(gst::event::Eos::new())? {
            self.checker.send(Sent::Eos);
            self.eos = true;
        } else if ready {
            return Err("the element refused EOS".into());
        }
        Ok(())
    }

    pub(super) fn drain(&mut self) -> Result<(), String> {
        self.wait_idle()?;
        if self.run.is_none() {
            return Ok(());
        }
        let pad = self.sinkpad.clone();
        let drained = self
            .upstream
            .call(self.deadline, "a DRAIN query", move || {
                pad.query(&mut gst::query::Drain::new())
            })?;
        self.take_log()?;
        if drained && self.ready() {
            self.checker.check_drained()?;
        }
        Ok(())
    }
}
