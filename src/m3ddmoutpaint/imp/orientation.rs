// SPDX-License-Identifier: MPL-2.0
//! The element's side of an `image-orientation` tag: the tag's method kept,
//! the caps configured for the upright frames (again when a tag changes the
//! method mid-stream), each input frame turned upright before anything reads
//! it, and the tag passed on saying `rotate-0`.

use std::sync::Arc;

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::M3ddmOutpaint;
use crate::m3ddmoutpaint::CAT;
use crate::m3ddmoutpaint::orientation::{Rotator, method_of_tags, upright_tags};
use crate::m3ddmoutpaint::state::Item;

impl M3ddmOutpaint {
    /// A TAG event: a new orientation reconfigures the current caps; the tag
    /// goes on (in its place among the frames) with the orientation upright.
    pub(super) fn sink_tag(&self, event: gst::Event) -> bool {
        let gst::EventView::Tag(tag) = event.view() else {
            return false;
        };
        let Some(method) = method_of_tags(tag.tag()) else {
            return self.enqueue(Item::Event(event));
        };
        let changed = self.upright.lock().unwrap().method.replace(method) != Some(method);
        if changed {
            gst::info!(CAT, imp = self, "turning the frames upright: {method:?}");
            if let Some(caps) = self.sinkpad.current_caps()
                && !self.sink_caps(&caps)
            {
                return false;
            }
        }
        let upright = gst::event::Tag::builder(upright_tags(tag.tag()))
            .seqnum(event.seqnum())
            .build();
        self.enqueue(Item::Event(upright))
    }

    /// The caps the element configures for `caps`: those of the upright
    /// frames when a tag turns them (the rotator kept for the chain).
    pub(super) fn upright_caps(&self, caps: &gst::Caps) -> Result<gst::Caps, String> {
        let mut upright = self.upright.lock().unwrap();
        let method = upright
            .method
            .filter(|&m| m != gst_video::VideoOrientationMethod::Identity);
        let Some(method) = method else {
            upright.rotator = None;
            return Ok(caps.clone());
        };
        let rotator = Rotator::new(caps, method)?;
        let upright_caps = rotator.caps.clone();
        upright.rotator = Some(Arc::new(rotator));
        Ok(upright_caps)
    }

    /// `buffer` turned upright when a tag asks for it.
    pub(super) fn upright_buffer(
        &self,
        buffer: gst::Buffer,
    ) -> Result<gst::Buffer, gst::FlowError> {
        let Some(rotator) = self.upright.lock().unwrap().rotator.clone() else {
            return Ok(buffer);
        };
        rotator.rotate(&buffer).map_err(|err| {
            gst::element_imp_error!(self, gst::StreamError::Format, ("{err}"));
            gst::FlowError::Error
        })
    }
}
