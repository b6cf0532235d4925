// SPDX-License-Identifier: MPL-2.0
//! Caps arithmetic of the element: the formats it takes and the transform of
//! caps in both directions (format and framerate pass through; the size
//! follows from the input's and the output's shape, or is left to downstream
//! with the pixel-aspect-ratio). `config.rs` fixes the sizes of one input
//! caps, `fixate.rs` the frame a downstream that refuses them takes.

use gst_video::VideoFormat;

use super::config::{OutputRequest, OutputShape, StreamConfig};
use super::formats::FORMATS;
use crate::engine::limits::MIN_FRAME_SIDE;

/// The pad template caps (both pads). Sizes from 1 are let in so that a too
/// small frame gets an error naming the problem rather than a silent refusal.
pub fn template_caps() -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format_list(FORMATS)
        .build()
}

/// The sink pad template: the template caps, then the same in the
/// `format:Interlaced` feature (one field per buffer), which the element lets
/// in only to refuse it with a sentence naming `deinterlace` (see
/// [`interlaced_caps`]).
pub fn sink_template_caps() -> gst::Caps {
    let mut caps = template_caps();
    caps.merge(interlaced_caps());
    caps
}

/// Raw video in the `format:Interlaced` feature (the sink pad template's second part).
fn interlaced_caps() -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .features([gst_video::CAPS_FEATURE_FORMAT_INTERLACED])
        .format_list(FORMATS)
        .build()
}

/// `caps` followed by the same structures in the `format:Interlaced` feature:
/// the sink pad offers those last, so that a source which has nothing but such
/// fields links, and its caps are refused with the element's error naming
/// `deinterlace` (no source picks them while it can give progressive frames).
pub fn with_interlaced_fields(caps: gst::Caps) -> gst::Caps {
    let mut fields = gst::Caps::new_empty();
    {
        let fields = fields.get_mut().expect("a new caps is writable");
        for structure in caps.iter() {
            fields.append_structure_full(
                structure.to_owned(),
                Some(gst::CapsFeatures::new([
                    gst_video::CAPS_FEATURE_FORMAT_INTERLACED,
                ])),
            );
        }
    }
    let mut caps = caps;
    caps.merge(fields);
    caps
}

/// Whether raw video in these caps features is let through accept-caps: system
/// memory, or interlaced fields there (refused later with a sentence).
pub fn accepted_features(features: Option<&gst::CapsFeaturesRef>) -> bool {
    features.is_none_or(|f| {
        f.iter().all(|feature| {
            feature == gst::CAPS_FEATURE_MEMORY_SYSTEM_MEMORY
                || feature == gst_video::CAPS_FEATURE_FORMAT_INTERLACED
        })
    })
}

/// The caps on the other pad for `caps` on the pad of `direction`, for an
/// output of `shape`: format and framerate pass through; an input of fixed
/// size and format gives its output at full resolution first (its own
/// pixel-aspect-ratio), then any size and pixel-aspect-ratio, as
/// `videoconvertscale` offers (downstream may fix them: the frame is then
/// composed at that size, at the display aspect); anything else gives any size
/// and pixel-aspect-ratio.
pub fn transform_caps(
    caps: &gst::Caps,
    direction: gst::PadDirection,
    shape: OutputShape,
) -> gst::Caps {
    let mut out = gst::Caps::new_empty();
    {
        let out_ref = out.get_mut().expect("a new caps is writable");
        for (structure, features) in caps.iter_with_features() {
            let mut any_size = structure.to_owned();
            any_size.set("width", gst::IntRange::new(1, i32::MAX));
            any_size.set("height", gst::IntRange::new(1, i32::MAX));
            any_size.set(
                "pixel-aspect-ratio",
                gst::FractionRange::new(
                    gst::Fraction::new(1, i32::MAX),
                    gst::Fraction::new(i32::MAX, 1),
                ),
            );
            if direction == gst::PadDirection::Sink
                && let Some((width, height)) = natural_output_size(structure, shape)
            {
                let mut exact = structure.to_owned();
                exact.set("width", width);
                exact.set("height", height);
                out_ref.append_structure_full(exact, Some(features.to_owned()));
            }
            out_ref.append_structure_full(any_size, Some(features.to_owned()));
        }
    }
    out
}

/// The full-resolution output size of an input structure whose format, width
/// and height are fixed.
fn natural_output_size(structure: &gst::StructureRef, shape: OutputShape) -> Option<(i32, i32)> {
    let width = structure.get::<i32>("width").ok()?;
    let height = structure.get::<i32>("height").ok()?;
    let format = VideoFormat::from_string(structure.get::<&str>("format").ok()?);
    if !FORMATS.contains(&format) || width < MIN_FRAME_SIDE as i32 || height < MIN_FRAME_SIDE as i32
    {
        return None;
    }
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", format.to_str())
        .field("width", width)
        .field("height", height)
        .field(
            "pixel-aspect-ratio",
            structure
                .get::<gst::Fraction>("pixel-aspect-ratio")
                .unwrap_or(gst::Fraction::new(1, 1)),
        )
        .build();
    let request = OutputRequest { shape, size: None };
    let config = StreamConfig::new(&caps, &[request], crate::engine::limits::FLAT_CANVAS).ok()?;
    let out = &config.outputs[0].out_info;
    Some((
        i32::try_from(out.width()).ok()?,
        i32::try_from(out.height()).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Ratio;

    const PORTRAIT: OutputShape = OutputShape::Aspect(Ratio { num: 9, den: 16 });

    fn init() {
        gst::init().unwrap();
    }

    #[test]
    fn src_to_sink_frees_the_size_and_keeps_the_rest() {
        init();
        let caps: gst::Caps = "video/x-raw,format=I420,width=180,height=320,framerate=30/1"
            .parse()
            .unwrap();
        let sink = transform_caps(&caps, gst::PadDirection::Src, PORTRAIT);
        let s = sink.structure(0).unwrap();
        assert_eq!(s.get::<&str>("format").unwrap(), "I420");
        assert_eq!(
            s.get::<gst::Fraction>("framerate").unwrap(),
            gst::Fraction::new(30, 1)
        );
        assert_eq!(
            s.get::<gst::IntRange<i32>>("width").unwrap(),
            gst::IntRange::new(1, i32::MAX)
        );
        assert_eq!(
            s.get::<gst::IntRange<i32>>("height").unwrap(),
            gst::IntRange::new(1, i32::MAX)
        );
    }

    #[test]
    fn fixed_input_gives_the_size_of_its_configuration() {
        init();
        for format in ["RGB", "I420", "NV12"] {
            let caps: gst::Caps =
                format!("video/x-raw,format={format},width=63,height=35,framerate=30/1")
                    .parse()
                    .unwrap();
            let request = OutputRequest {
                shape: PORTRAIT,
                size: None,
            };
            let config = StreamConfig::new(&caps, &[request], 128).unwrap();
            let config = &config.outputs[0];
            let src = transform_caps(&caps, gst::PadDirection::Sink, PORTRAIT);
            // The full-resolution size first, then any size for downstream to fix.
            assert_eq!(src.size(), 2);
            let s = src.structure(0).unwrap();
            assert_eq!(
                s.get::<i32>("width").unwrap() as u32,
                config.out_info.width()
            );
            assert_eq!(
                s.get::<i32>("height").unwrap() as u32,
                config.out_info.height()
            );
            assert_eq!(config.output.source.width(), 63);
            if format != "RGB" {
                assert_eq!(config.out_info.width() % 2, 0);
                assert_eq!(config.out_info.height() % 2, 0);
                assert_eq!(config.output.source.x0 % 2, 0);
                assert_eq!(config.output.source.y0 % 2, 0);
            }
        }
    }

    #[test]
    fn unfixed_input_gives_any_output_size() {
        init();
        let caps: gst::Caps = "video/x-raw,format=RGB,width=[1,100],height=36"
            .parse()
            .unwrap();
        let src = transform_caps(&caps, gst::PadDirection::Sink, PORTRAIT);
        let s = src.structure(0).unwrap();
        assert_eq!(
            s.get::<gst::IntRange<i32>>("width").unwrap(),
            gst::IntRange::new(1, i32::MAX)
        );
    }

    #[test]
    fn unhandled_format_is_named() {
        init();
        let caps: gst::Caps = "video/x-raw,format=GRAY8,width=64,height=36,framerate=30/1"
            .parse()
            .unwrap();
        let request = OutputRequest {
            shape: PORTRAIT,
            size: None,
        };
        let err = StreamConfig::new(&caps, &[request], 128).unwrap_err();
        assert!(err.contains("GRAY8") && err.contains("v210"), "{err}");
    }

    #[test]
    fn one_pixel_frames_are_refused() {
        init();
        let caps: gst::Caps = "video/x-raw,format=RGB,width=1,height=36,framerate=30/1"
            .parse()
            .unwrap();
        let request = OutputRequest {
            shape: PORTRAIT,
            size: None,
        };
        let err = StreamConfig::new(&caps, &[request], 128).unwrap_err();
        assert!(err.contains("1x36") && err.contains("2x2"), "{err}");
    }
}
