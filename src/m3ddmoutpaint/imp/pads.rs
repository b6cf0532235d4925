// SPDX-License-Identifier: MPL-2.0
//! The element's source pads: the functions every output pad has, the
//! request pads `src_%u` (one more output each, announced to GstChildProxy so
//! that `src_0::aspect=…` works from gst-launch) and their release; the pad
//! templates.

use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::M3ddmOutpaint;
use crate::m3ddmoutpaint::CAT;
use crate::m3ddmoutpaint::caps;
use crate::m3ddmoutpaint::outputpad::{OutputPad, pad_number};

impl M3ddmOutpaint {
    /// A source pad builder with the functions of every output: caps fixed by
    /// the element, queries (caps, latency) answered by it.
    pub(super) fn output_pad_builder<
        T: IsA<gst::Pad> + IsA<glib::Object> + glib::object::IsClass,
    >(
        builder: gst::PadBuilder<T>,
    ) -> gst::PadBuilder<T> {
        builder
            .flags(gst::PadFlags::FIXED_CAPS)
            .query_function(|pad, parent, query| {
                M3ddmOutpaint::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.src_query(pad.upcast_ref(), query),
                )
            })
            .event_function(|pad, parent, event| {
                M3ddmOutpaint::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.src_event(pad.upcast_ref(), event),
                )
            })
    }

    /// Events from downstream: QoS lateness makes the frames up to the late
    /// running time leave with the blur fill; every event then goes upstream.
    fn src_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        if let gst::EventView::Qos(qos) = event.view() {
            let (_, _, jitter, timestamp) = qos.get();
            let mut state = self.shared.lock();
            state.deadlines.late_until = match timestamp {
                Some(timestamp) if jitter > 0 => {
                    Some(timestamp + gst::ClockTime::from_nseconds(jitter as u64))
                }
                _ => None,
            };
            self.shared.notify();
        }
        gst::Pad::event_default(pad, Some(&*self.obj()), event)
    }

    /// A new output pad (`src_N`). While streaming, the outputs are configured
    /// anew with the current input caps (the held frames leave first), so that
    /// the shared canvas covers every ratio.
    pub(super) fn request_output_pad(
        &self,
        template: &gst::PadTemplate,
        name: Option<&str>,
    ) -> Option<gst::Pad> {
        let obj = self.obj();
        let name = match name {
            Some(name) => name.to_owned(),
            None => {
                let next = obj
                    .src_pads()
                    .iter()
                    .map(|pad| pad_number(&pad.name()))
                    .filter(|&n| n != u32::MAX)
                    .max()
                    .map_or(0, |n| n + 1);
                format!("src_{next}")
            }
        };
        if obj.static_pad(&name).is_some() || pad_number(&name) == u32::MAX {
            gst::warning!(CAT, imp = self, "cannot add a pad named {name}");
            return None;
        }
        let pad = Self::output_pad_builder(gst::PadBuilder::<OutputPad>::from_template(template))
            .name(name.as_str())
            .build();
        if pad.set_active(true).is_err() && obj.current_state() > gst::State::Ready {
            gst::warning!(CAT, imp = self, "cannot activate {name}");
        }
        obj.add_pad(&pad).ok()?;
        obj.child_added(&pad, &name);
        gst::info!(CAT, imp = self, "added output {name}");
        if let Some(caps) = self.sinkpad.current_caps() {
            self.sink_caps(&caps);
        }
        Some(pad.upcast())
    }

    /// A released output stops at once; the others go on with the same canvas.
    pub(super) fn release_output_pad(&self, pad: &gst::Pad) {
        {
            let mut state = self.shared.lock();
            state.outputs.retain(|output| &output.pad != pad);
        }
        let _ = pad.set_active(false);
        let obj = self.obj();
        let name = pad.name();
        if obj.remove_pad(pad).is_ok() {
            obj.child_removed(pad, &name);
        }
        gst::info!(CAT, imp = self, "released output {name}");
    }
}

impl ChildProxyImpl for M3ddmOutpaint {
    fn child_by_index(&self, index: u32) -> Option<glib::Object> {
        self.obj()
            .pads()
            .into_iter()
            .nth(index as usize)
            .map(|pad| pad.upcast())
    }

    fn children_count(&self) -> u32 {
        self.obj().num_pads() as u32
    }

    fn child_by_name(&self, name: &str) -> Option<glib::Object> {
        self.obj().static_pad(name).map(|pad| pad.upcast())
    }
}

/// The pad templates: `src` and the request pads `src_%u` of the template
/// caps, `sink` of those and of interlaced fields (refused with a sentence).
pub(super) fn templates() -> &'static [gst::PadTemplate] {
    static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
        let caps = caps::template_caps();
        vec![
            gst::PadTemplate::new(
                "src",
                gst::PadDirection::Src,
                gst::PadPresence::Always,
                &caps,
            )
            .unwrap(),
            gst::PadTemplate::with_gtype(
                "src_%u",
                gst::PadDirection::Src,
                gst::PadPresence::Request,
                &caps,
                OutputPad::static_type(),
            )
            .unwrap(),
            gst::PadTemplate::new(
                "sink",
                gst::PadDirection::Sink,
                gst::PadPresence::Always,
                &caps::sink_template_caps(),
            )
            .unwrap(),
        ]
    });
    PAD_TEMPLATES.as_ref()
}
