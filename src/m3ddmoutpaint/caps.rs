// SPDX-License-Identifier: MPL-2.0
//! Caps arithmetic of the element: the formats it takes, the output caps of an
//! input (same format, framerate and pixel-aspect-ratio; the size from the
//! engine's output layout) and the transform of caps in both directions.

use gst_video::VideoFormat;

use crate::engine::{self, CanvasLayout, OutputLayout, Ratio};

/// The formats handled, in order of preference; the output has the input's format.
pub const FORMATS: [VideoFormat; 6] = [
    VideoFormat::Rgb,
    VideoFormat::Rgba,
    VideoFormat::Bgra,
    VideoFormat::Bgrx,
    VideoFormat::I420,
    VideoFormat::Nv12,
];

/// Frames smaller than this (either side) are refused with an error message.
pub const MIN_FRAME_SIDE: u32 = 2;

/// The pad template caps (both pads). Sizes from 1 are let in so that a too
/// small frame gets an error naming the problem rather than a silent refusal.
pub fn template_caps() -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format_list(FORMATS)
        .build()
}

/// Width and height of the output must be multiples of this (chroma subsampling).
pub fn size_alignment(format: VideoFormat) -> u32 {
    match format {
        VideoFormat::I420 | VideoFormat::Nv12 => 2,
        _ => 1,
    }
}

fn names_of_formats() -> String {
    FORMATS
        .iter()
        .map(|f| f.to_str().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Everything fixed by one input caps: both infos, the full-resolution output
/// layout and where the frame lies on the model canvas.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub in_info: gst_video::VideoInfo,
    pub out_info: gst_video::VideoInfo,
    pub out_caps: gst::Caps,
    pub output: OutputLayout,
    pub canvas: CanvasLayout,
}

impl StreamConfig {
    /// The configuration of `in_caps` at display aspect `aspect` on a `canvas`
    /// square, or a sentence saying why these caps cannot be handled.
    pub fn new(in_caps: &gst::CapsRef, aspect: Ratio, canvas: u32) -> Result<StreamConfig, String> {
        let in_info = gst_video::VideoInfo::from_caps(in_caps).map_err(|_| {
            format!("cannot handle caps {in_caps}: they are not complete raw video caps")
        })?;
        if !FORMATS.contains(&in_info.format()) {
            return Err(format!(
                "cannot handle format {}: m3ddmoutpaint takes {}",
                in_info.format().to_str(),
                names_of_formats()
            ));
        }
        let (width, height) = (in_info.width(), in_info.height());
        if width < MIN_FRAME_SIDE || height < MIN_FRAME_SIDE {
            return Err(format!(
                "frame size {width}x{height} is smaller than the {MIN_FRAME_SIDE}x{MIN_FRAME_SIDE} minimum"
            ));
        }
        let par = pixel_aspect(in_info.par());
        let output = engine::geometry::output_layout(
            width,
            height,
            par,
            aspect,
            size_alignment(in_info.format()),
        )
        .map_err(|err| {
            format!("cannot lay out a {width}x{height} frame at aspect {aspect:?}: {err}")
        })?;
        let output_ratio =
            Ratio::new(output.width, output.height).map_err(|err| err.to_string())?;
        let canvas = engine::geometry::canvas_layout(width, height, output_ratio, canvas).map_err(
            |err| format!("cannot lay out a {width}x{height} frame on the {canvas} canvas: {err}"),
        )?;

        let mut out_caps = in_caps.to_owned();
        {
            let out_caps = out_caps.make_mut();
            out_caps.set(
                "width",
                i32::try_from(output.width).map_err(|_| "output width overflows".to_string())?,
            );
            out_caps.set(
                "height",
                i32::try_from(output.height).map_err(|_| "output height overflows".to_string())?,
            );
        }
        let out_info = gst_video::VideoInfo::from_caps(&out_caps)
            .map_err(|_| format!("cannot build the output caps {out_caps}"))?;
        Ok(StreamConfig {
            in_info,
            out_info,
            out_caps,
            output,
            canvas,
        })
    }

    /// Frames per second, or `None` for a variable / unknown framerate (0/1).
    pub fn fps(&self) -> Option<f64> {
        let fps = self.in_info.fps();
        (fps.numer() > 0 && fps.denom() > 0).then(|| fps.numer() as f64 / fps.denom() as f64)
    }
}

/// The pixel-aspect-ratio as a ratio (1:1 when unset or invalid).
fn pixel_aspect(par: gst::Fraction) -> Ratio {
    match (u32::try_from(par.numer()), u32::try_from(par.denom())) {
        (Ok(num), Ok(den)) if num > 0 && den > 0 => Ratio { num, den },
        _ => Ratio { num: 1, den: 1 },
    }
}

/// The caps on the other pad for `caps` on the pad of `direction`: format,
/// framerate and pixel-aspect-ratio pass through; an input of fixed size and
/// format gives its exact output size, anything else any size.
pub fn transform_caps(caps: &gst::Caps, direction: gst::PadDirection, aspect: Ratio) -> gst::Caps {
    let mut out = gst::Caps::new_empty();
    {
        let out_ref = out.get_mut().expect("a new caps is writable");
        for (structure, features) in caps.iter_with_features() {
            let mut structure = structure.to_owned();
            let exact = (direction == gst::PadDirection::Sink)
                .then(|| exact_output_size(&structure, aspect))
                .flatten();
            match exact {
                Some((width, height)) => {
                    structure.set("width", width);
                    structure.set("height", height);
                }
                None => {
                    structure.set("width", gst::IntRange::new(1, i32::MAX));
                    structure.set("height", gst::IntRange::new(1, i32::MAX));
                }
            }
            out_ref.append_structure_full(structure, Some(features.to_owned()));
        }
    }
    out
}

/// The output size of an input structure whose format, width and height are fixed.
fn exact_output_size(structure: &gst::StructureRef, aspect: Ratio) -> Option<(i32, i32)> {
    let width = u32::try_from(structure.get::<i32>("width").ok()?).ok()?;
    let height = u32::try_from(structure.get::<i32>("height").ok()?).ok()?;
    let format = VideoFormat::from_string(structure.get::<&str>("format").ok()?);
    if !FORMATS.contains(&format) || width < MIN_FRAME_SIDE || height < MIN_FRAME_SIDE {
        return None;
    }
    let par = match structure.value("pixel-aspect-ratio") {
        Ok(value) => pixel_aspect(value.get::<gst::Fraction>().ok()?),
        Err(_) => Ratio { num: 1, den: 1 },
    };
    let layout =
        engine::geometry::output_layout(width, height, par, aspect, size_alignment(format)).ok()?;
    Some((
        i32::try_from(layout.width).ok()?,
        i32::try_from(layout.height).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() {
        gst::init().unwrap();
    }

    #[test]
    fn src_to_sink_frees_the_size_and_keeps_the_rest() {
        init();
        let caps: gst::Caps = "video/x-raw,format=I420,width=180,height=320,framerate=30/1"
            .parse()
            .unwrap();
        let sink = transform_caps(&caps, gst::PadDirection::Src, Ratio { num: 9, den: 16 });
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
        let aspect = Ratio { num: 9, den: 16 };
        for format in ["RGB", "I420", "NV12"] {
            let caps: gst::Caps =
                format!("video/x-raw,format={format},width=63,height=35,framerate=30/1")
                    .parse()
                    .unwrap();
            let config = StreamConfig::new(&caps, aspect, 128).unwrap();
            let src = transform_caps(&caps, gst::PadDirection::Sink, aspect);
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
        let src = transform_caps(&caps, gst::PadDirection::Sink, Ratio { num: 9, den: 16 });
        let s = src.structure(0).unwrap();
        assert_eq!(
            s.get::<gst::IntRange<i32>>("width").unwrap(),
            gst::IntRange::new(1, i32::MAX)
        );
    }

    #[test]
    fn unhandled_format_is_named() {
        init();
        let caps: gst::Caps = "video/x-raw,format=YUY2,width=64,height=36,framerate=30/1"
            .parse()
            .unwrap();
        let err = StreamConfig::new(&caps, Ratio { num: 9, den: 16 }, 128).unwrap_err();
        assert!(err.contains("YUY2") && err.contains("NV12"), "{err}");
    }

    #[test]
    fn one_pixel_frames_are_refused() {
        init();
        let caps: gst::Caps = "video/x-raw,format=RGB,width=1,height=36,framerate=30/1"
            .parse()
            .unwrap();
        let err = StreamConfig::new(&caps, Ratio { num: 9, den: 16 }, 128).unwrap_err();
        assert!(err.contains("1x36") && err.contains("2x2"), "{err}");
    }
}
