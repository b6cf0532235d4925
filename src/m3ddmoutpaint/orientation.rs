// SPDX-License-Identifier: MPL-2.0
//! An `image-orientation` tag applied before reframing, as
//! `videoflip video-direction=auto` applies it: the input frames are turned
//! upright (sample for sample, plane by plane, so the source stays exact), the
//! element lays out and reframes the upright frame, and the tag that goes
//! downstream says `rotate-0`. A format whose planes cannot be turned sample
//! for sample (4:2:2 chroma turned by 90°, packed 4:2:2 and v210) is refused
//! with a sentence.

use gst_video::VideoOrientationMethod as Method;
use gst_video::prelude::*;

use super::frames::map_input;
use super::metas::copy_metas_without_geometry;

/// The turn the last orientation tag asked for (none for rotate-0), and the
/// rotator of the current caps.
#[derive(Debug, Default)]
pub struct Upright {
    pub method: Option<Method>,
    pub rotator: Option<std::sync::Arc<Rotator>>,
}

/// Whether the method swaps width and height.
fn swaps_axes(method: Method) -> bool {
    matches!(
        method,
        Method::_90r | Method::_90l | Method::UlLr | Method::UrLl
    )
}

/// The orientation an `image-orientation` tag asks for: `None` without one
/// (or for one `videoflip` would not apply either).
pub fn method_of_tags(tags: &gst::TagListRef) -> Option<Method> {
    tags.get::<gst::tags::ImageOrientation>()?;
    Method::from_tag(tags).filter(|m| !matches!(m, Method::Auto | Method::Custom))
}

/// `tags` with the orientation made `rotate-0` (the frames are upright now).
pub fn upright_tags(tags: &gst::TagListRef) -> gst::TagList {
    let mut tags = tags.to_owned();
    tags.make_mut()
        .add::<gst::tags::ImageOrientation>(&"rotate-0", gst::TagMergeMode::Replace);
    tags
}

/// Turns the frames of one input caps upright.
#[derive(Debug)]
pub struct Rotator {
    method: Method,
    in_info: gst_video::VideoInfo,
    out_info: gst_video::VideoInfo,
    /// The upright frames' caps.
    pub caps: gst::Caps,
}

impl Rotator {
    /// The rotator of `caps`' frames by `method`, or a sentence saying why
    /// their format cannot be turned.
    pub fn new(caps: &gst::CapsRef, method: Method) -> Result<Rotator, String> {
        let in_info = gst_video::VideoInfo::from_caps(caps).map_err(|_| {
            format!("cannot handle caps {caps}: they are not complete raw video caps")
        })?;
        let finfo = in_info.format_info();
        let name = || tag_name(method);
        for plane in 0..finfo.n_planes() {
            let components: Vec<usize> = (0..finfo.n_components() as usize)
                .filter(|&c| finfo.plane()[c] == plane)
                .collect();
            let stride = finfo.pixel_stride()[components[0]];
            let (w_sub, h_sub) = (finfo.w_sub()[components[0]], finfo.h_sub()[components[0]]);
            let samples_whole = stride > 0
                && components
                    .iter()
                    .all(|&c| finfo.pixel_stride()[c] == stride);
            if !samples_whole || (swaps_axes(method) && w_sub != h_sub) {
                return Err(format!(
                    "the stream is tagged image-orientation={} and m3ddmoutpaint cannot turn {} \
                     frames upright sample for sample: convert them to a 4:2:0 or 4:4:4 format \
                     before it (videoconvert ! video/x-raw,format=I420)",
                    name(),
                    in_info.format().to_str()
                ));
            }
        }
        let (width, height) = (in_info.width(), in_info.height());
        let par = in_info.par();
        let (width, height, par) = if swaps_axes(method) {
            (height, width, gst::Fraction::new(par.denom(), par.numer()))
        } else {
            (width, height, par)
        };
        let mut out_caps = caps.to_owned();
        {
            let out_caps = out_caps.make_mut();
            out_caps.set("width", width as i32);
            out_caps.set("height", height as i32);
            out_caps.set("pixel-aspect-ratio", par);
        }
        let out_info = gst_video::VideoInfo::from_caps(&out_caps)
            .map_err(|_| format!("cannot build the upright caps {out_caps}"))?;
        Ok(Rotator {
            method,
            in_info,
            out_info,
            caps: out_caps,
        })
    }

    /// `input` turned upright, with its timestamps, flags and the metas that
    /// do not describe its geometry.
    pub fn rotate(&self, input: &gst::BufferRef) -> Result<gst::Buffer, String> {
        let source = map_input(input, &self.in_info)?;
        let output = gst::Buffer::with_size(self.out_info.size())
            .map_err(|err| format!("cannot allocate an upright frame: {err}"))?;
        let mut output = gst_video::VideoFrame::from_buffer_writable(output, &self.out_info)
            .map_err(|_| "cannot map an upright frame".to_string())?;
        let finfo = self.in_info.format_info();
        for plane in 0..finfo.n_planes() {
            let component = (0..finfo.n_components() as usize)
                .find(|&c| finfo.plane()[c] == plane)
                .expect("every plane holds a component");
            let unit = finfo.pixel_stride()[component] as usize;
            let (w_sub, h_sub) = (finfo.w_sub()[component], finfo.h_sub()[component]);
            let side = |value: u32, sub: u32| value.div_ceil(1 << sub) as usize;
            let (sw, sh) = (
                side(self.in_info.width(), w_sub),
                side(self.in_info.height(), h_sub),
            );
            let (dw, dh) = (
                side(self.out_info.width(), w_sub),
                side(self.out_info.height(), h_sub),
            );
            let s_stride = source.plane_stride()[plane as usize] as usize;
            let d_stride = output.plane_stride()[plane as usize] as usize;
            let s = source.plane_data(plane).map_err(|err| err.to_string())?;
            let d = output
                .plane_data_mut(plane)
                .map_err(|err| err.to_string())?;
            for y in 0..dh {
                for x in 0..dw {
                    let (sx, sy) = self.source_of(x, y, sw, sh);
                    let from = sy * s_stride + sx * unit;
                    let to = y * d_stride + x * unit;
                    d[to..to + unit].copy_from_slice(&s[from..from + unit]);
                }
            }
        }
        let mut output = output.into_buffer();
        {
            let output = output.make_mut();
            input
                .copy_into(
                    output,
                    gst::BufferCopyFlags::FLAGS | gst::BufferCopyFlags::TIMESTAMPS,
                    ..,
                )
                .map_err(|err| format!("cannot copy the input's timestamps: {err}"))?;
            copy_metas_without_geometry(input, output);
        }
        Ok(output)
    }

    /// The source sample that lands at `(x, y)` of the upright plane
    /// (`sw × sh`: the source plane), as videoflip maps it.
    fn source_of(&self, x: usize, y: usize, sw: usize, sh: usize) -> (usize, usize) {
        match self.method {
            Method::_90r => (y, sh - 1 - x),
            Method::_90l => (sw - 1 - y, x),
            Method::_180 => (sw - 1 - x, sh - 1 - y),
            Method::Horiz => (sw - 1 - x, y),
            Method::Vert => (x, sh - 1 - y),
            Method::UlLr => (y, x),
            Method::UrLl => (sw - 1 - y, sh - 1 - x),
            _ => (x, y),
        }
    }
}

/// The tag's spelling of a method.
fn tag_name(method: Method) -> &'static str {
    match method {
        Method::_90r => "rotate-90",
        Method::_180 => "rotate-180",
        Method::_90l => "rotate-270",
        Method::Horiz => "flip-rotate-0",
        Method::UlLr => "flip-rotate-90",
        Method::Vert => "flip-rotate-180",
        Method::UrLl => "flip-rotate-270",
        _ => "rotate-0",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::m3ddmoutpaint::test_support::patterned_frame;

    /// A 3×2 frame of `format` whose every byte names its plane, row and column.
    fn frame(format: &str, width: u32, height: u32) -> (gst::Caps, gst::Buffer) {
        gst::init().unwrap();
        let info = gst_video::VideoInfo::builder(
            gst_video::VideoFormat::from_string(format),
            width,
            height,
        )
        .build()
        .unwrap();
        let buffer = patterned_frame(&info, |plane, x, y| (plane * 64 + y * 16 + x) as u8);
        (info.to_caps().unwrap(), buffer)
    }

    fn byte(buffer: &gst::Buffer, caps: &gst::Caps, plane: u32, x: usize, y: usize) -> u8 {
        let info = gst_video::VideoInfo::from_caps(caps).unwrap();
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).unwrap();
        let stride = frame.plane_stride()[plane as usize] as usize;
        frame.plane_data(plane).unwrap()[y * stride + x]
    }

    #[test]
    fn rotate_90_turns_the_top_left_to_the_top_right() {
        let (caps, input) = frame("GRAY8", 3, 2);
        let rotator = Rotator::new(&caps, Method::_90r).unwrap();
        let info = gst_video::VideoInfo::from_caps(&rotator.caps).unwrap();
        assert_eq!((info.width(), info.height()), (2, 3));
        let out = rotator.rotate(&input).unwrap();
        // Source (0,0) → upright top-right (1,0); source bottom-left (0,1) → (0,0).
        assert_eq!(
            byte(&out, &rotator.caps, 0, 1, 0),
            byte(&input, &caps, 0, 0, 0)
        );
        assert_eq!(
            byte(&out, &rotator.caps, 0, 0, 0),
            byte(&input, &caps, 0, 0, 1)
        );
        assert_eq!(
            byte(&out, &rotator.caps, 0, 0, 2),
            byte(&input, &caps, 0, 2, 1)
        );
    }

    #[test]
    fn i420_chroma_turns_with_its_plane() {
        let (caps, input) = frame("I420", 4, 2);
        let rotator = Rotator::new(&caps, Method::_90l).unwrap();
        let out = rotator.rotate(&input).unwrap();
        // The 2×1 U plane becomes 1×2: its last sample on top.
        assert_eq!(
            byte(&out, &rotator.caps, 1, 0, 0),
            byte(&input, &caps, 1, 1, 0)
        );
        assert_eq!(
            byte(&out, &rotator.caps, 1, 0, 1),
            byte(&input, &caps, 1, 0, 0)
        );
    }

    #[test]
    fn packed_422_is_refused_with_a_sentence() {
        let (caps, _) = frame("YUY2", 4, 2);
        let err = Rotator::new(&caps, Method::_90r).unwrap_err();
        assert!(err.contains("rotate-90") && err.contains("YUY2"), "{err}");
    }

    #[test]
    fn the_tag_downstream_says_rotate_0() {
        gst::init().unwrap();
        let mut tags = gst::TagList::new();
        tags.get_mut()
            .unwrap()
            .add::<gst::tags::ImageOrientation>(&"rotate-90", gst::TagMergeMode::Replace);
        assert_eq!(method_of_tags(&tags), Some(Method::_90r));
        let upright = upright_tags(&tags);
        assert_eq!(method_of_tags(&upright), Some(Method::Identity));
    }
}
