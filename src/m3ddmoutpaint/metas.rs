// SPDX-License-Identifier: MPL-2.0
//! The metas of an input buffer carried to every output frame made from it,
//! the way GStreamer's own video filters carry them:
//! - metas without tags (timecode, closed captions, reference timestamps, SEI
//!   user data, custom ones), and those tagged only `video` or `colorspace`
//!   (the output keeps the input's format), are copied by their own transform;
//! - a region of interest is moved and scaled to where the source landed in
//!   the output frame (GStreamer 1.22 has no transform for an offset, so by hand,
//!   as `videobox` places it);
//! - AFD and bar data are dropped: they describe the bars or active area of the
//!   source frame, and the generated area now fills the whole frame;
//! - other metas tagged with the frame's size or orientation (and the input's
//!   own `GstVideoMeta` and crop) describe the input's geometry: dropped.
//!
//! The GAP flag is cleared on a frame that holds generated pixels. A frame
//! turned upright (`orientation.rs`) keeps the metas without geometry.

use std::ops::ControlFlow;

use gst_video::prelude::*;

use super::CAT;
use crate::engine::Rect;

/// Where the input frame lies in the output frame.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    /// The input frame's size.
    pub input: (u32, u32),
    /// The output frame's size.
    pub output: (u32, u32),
    /// The source's box in the output frame (scaled when downstream fixed a size).
    pub source: Rect,
}

impl Placement {
    /// Whether the output frame holds more than the source (generated pixels).
    fn adds_area(&self) -> bool {
        self.source != Rect::at(0, 0, self.output.0, self.output.1)
    }

    /// A rectangle of the input frame in output coordinates.
    fn place(&self, (x, y, w, h): (u32, u32, u32, u32)) -> (u32, u32, u32, u32) {
        let scale = |value: u32, to: u32, from: u32| {
            (u64::from(value) * u64::from(to) / u64::from(from.max(1))) as u32
        };
        let (sw, sh) = (self.source.width(), self.source.height());
        let (iw, ih) = self.input;
        (
            self.source.x0 + scale(x.min(iw), sw, iw),
            self.source.y0 + scale(y.min(ih), sh, ih),
            scale(w.min(iw - x.min(iw)), sw, iw),
            scale(h.min(ih - y.min(ih)), sh, ih),
        )
    }
}

/// Copies or transforms the metas of `input` onto `output` (see the module
/// comment), and clears GAP on an output that holds generated pixels. The
/// output carries the input's flags already.
pub fn carry_metas(input: &gst::BufferRef, output: &mut gst::BufferRef, placement: &Placement) {
    input.foreach_meta(|meta| {
        carry_meta(&meta, output, Some(placement));
        ControlFlow::Continue(())
    });
    if placement.adds_area() {
        output.unset_flags(gst::BufferFlags::GAP);
    }
}

/// Copies the metas of `input` that do not describe its geometry onto
/// `output`, a frame of other geometry (the input turned upright): regions
/// of interest are left out with the other geometry metas.
pub fn copy_metas_without_geometry(input: &gst::BufferRef, output: &mut gst::BufferRef) {
    input.foreach_meta(|meta| {
        carry_meta(&meta, output, None);
        ControlFlow::Continue(())
    });
}

fn carry_meta(
    meta: &gst::MetaRef<gst::Meta>,
    output: &mut gst::BufferRef,
    placement: Option<&Placement>,
) {
    let api = meta.api();
    if let Some(roi) = meta.downcast_ref::<gst_video::VideoRegionOfInterestMeta>() {
        let Some(placement) = placement else {
            gst::debug!(CAT, "not carrying a region of interest into a turned frame");
            return;
        };
        let mut moved = gst_video::VideoRegionOfInterestMeta::add(
            output,
            roi.roi_type(),
            placement.place(roi.rect()),
        );
        moved.set_id(roi.id());
        moved.set_parent_id(roi.parent_id());
        for param in roi.params() {
            moved.add_param(param.to_owned());
        }
    } else if api == gst_video::VideoAFDMeta::meta_api()
        || api == gst_video::VideoBarMeta::meta_api()
        || api == gst_video::VideoMeta::meta_api()
    {
        gst::trace!(
            CAT,
            "not carrying {api}: it describes the input frame's geometry"
        );
    } else if meta.tags_contain_only(&[
        gst_video::video_meta::tags::Video::TAG_NAME,
        gst_video::video_meta::tags::Colorspace::TAG_NAME,
    ]) {
        if let Err(err) = meta.transform(output, &gst::meta::MetaTransformCopy::new(..)) {
            gst::debug!(CAT, "cannot copy {api}: {err}");
        }
    } else {
        gst::debug!(
            CAT,
            "not carrying {api}: tagged with the input frame's geometry ({:?})",
            meta.tags()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rectangle_lands_where_the_source_did() {
        let placement = Placement {
            input: (100, 50),
            output: (100, 178),
            source: Rect::at(0, 64, 100, 50),
        };
        assert_eq!(placement.place((10, 5, 20, 10)), (10, 69, 20, 10));
        assert!(placement.adds_area());
        // A source scaled to half its size in a smaller frame.
        let scaled = Placement {
            input: (100, 50),
            output: (50, 89),
            source: Rect::at(0, 32, 50, 25),
        };
        assert_eq!(scaled.place((10, 6, 20, 10)), (5, 35, 10, 5));
        // A rectangle reaching past the input is clipped to it.
        assert_eq!(placement.place((90, 40, 30, 30)), (90, 104, 10, 10));
    }

    #[test]
    fn a_frame_that_is_the_source_adds_nothing() {
        let placement = Placement {
            input: (64, 36),
            output: (64, 36),
            source: Rect::at(0, 0, 64, 36),
        };
        assert!(!placement.adds_area());
    }
}
