// SPDX-License-Identifier: MPL-2.0
//! What one input caps fixes: the input, every output's frame (its caps, where
//! the source lies in it, its crop of the model canvas) and the canvas the
//! outputs share.
//!
//! An output is shaped by a display aspect ratio (the frame grows around the
//! source on the sides the ratio needs) or by margins on each side (`expand`).
//! Its frame is the source at full resolution, unless downstream fixes a size:
//! then the whole frame, source included, is composed at that size. One output
//! uses the official canvas layout of its ratio; several share the official
//! layout of all their ratios (`target_ratio_list`), each cropping its own
//! frame at the content's scale, so that one diffusion run serves them all.

use super::formats::{FORMATS, names_of_formats, size_alignment};
use crate::engine::geometry::{self, CanvasLayout, Margins, OutputLayout, Ratio, Rect};
use crate::engine::limits::{MAX_OUTPUT_SIDE, MIN_FRAME_SIDE};

/// The pixel-aspect-ratio as a ratio (1:1 when unset or invalid).
pub fn pixel_aspect(par: gst::Fraction) -> Ratio {
    match (u32::try_from(par.numer()), u32::try_from(par.denom())) {
        (Ok(num), Ok(den)) if num > 0 && den > 0 => Ratio { num, den },
        _ => Ratio { num: 1, den: 1 },
    }
}

/// A ratio as a GStreamer fraction.
pub fn fraction(ratio: Ratio) -> Result<gst::Fraction, String> {
    match (i32::try_from(ratio.num), i32::try_from(ratio.den)) {
        (Ok(num), Ok(den)) => Ok(gst::Fraction::new(num, den)),
        _ => Err(format!("the ratio {}/{} overflows", ratio.num, ratio.den)),
    }
}

/// What shapes one output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutputShape {
    /// The output's display aspect ratio.
    Aspect(Ratio),
    /// Margins as fractions of the source's size: top, right, bottom, left.
    Expand([f64; 4]),
}

/// One output as requested: its shape and, when downstream refuses the
/// full-resolution frame, the frame it takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputRequest {
    pub shape: OutputShape,
    pub size: Option<FixedFrame>,
}

/// An output frame fixed by downstream: its size and pixel-aspect-ratio. The
/// whole frame, source included, is composed at that size; its display aspect
/// (`width · par` : `height`) is the one the frame is laid out for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedFrame {
    pub width: u32,
    pub height: u32,
    pub par: Ratio,
}

impl FixedFrame {
    /// The frame's display aspect ratio.
    fn display_ratio(&self) -> Result<Ratio, String> {
        display_ratio(self.width, self.height, self.par)
    }
}

/// The display aspect ratio of `width × height` pixels of aspect `par`, reduced.
pub fn display_ratio(width: u32, height: u32, par: Ratio) -> Result<Ratio, String> {
    reduced(
        u64::from(width) * u64::from(par.num),
        u64::from(height) * u64::from(par.den),
    )
    .ok_or_else(|| {
        format!(
            "the display aspect of {width}x{height} at pixel-aspect-ratio {}/{} is not a ratio \
             GStreamer can carry",
            par.num, par.den
        )
    })
}

/// `num : den` reduced, when both terms are > 0 and fit a GStreamer fraction.
pub fn reduced(num: u64, den: u64) -> Option<Ratio> {
    let divisor = gcd(num, den).max(1);
    let (num, den) = (num / divisor, den / divisor);
    let fits = |v: u64| (1..=i32::MAX as u64).contains(&v);
    (fits(num) && fits(den)).then_some(Ratio {
        num: num as u32,
        den: den as u32,
    })
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// One output's frame.
#[derive(Debug, Clone)]
pub struct OutputConfig {
    pub out_info: gst_video::VideoInfo,
    pub out_caps: gst::Caps,
    /// The frame and the source's box in it (the source's own size unless scaled).
    pub output: OutputLayout,
    /// The frame `output` is scaled from: the source at its own size, at the
    /// input's pixel-aspect-ratio (`output` itself unless scaled).
    pub natural: OutputLayout,
    /// The content box and this output's crop on the canvas.
    pub layout: CanvasLayout,
}

impl OutputConfig {
    /// Whether the source is scaled into its box (a size fixed downstream).
    pub fn scales_source(&self, in_info: &gst_video::VideoInfo) -> bool {
        self.output.source.width() != in_info.width()
            || self.output.source.height() != in_info.height()
    }

    /// This output stored as `frame` (another size and pixel-aspect-ratio) on
    /// the same crop of the same canvas: the same picture, its natural frame
    /// scaled to `frame` (the natural frame itself at its own size). Refused
    /// with a sentence when `frame` does not display the crop's aspect to
    /// within `align` pixels on a side (a rounding step): only another canvas
    /// layout could fill it.
    pub fn refit(
        &self,
        in_info: &gst_video::VideoInfo,
        frame: FixedFrame,
    ) -> Result<OutputConfig, String> {
        let natural = self.natural;
        let shown = display_ratio(natural.width, natural.height, pixel_aspect(in_info.par()))?;
        let (shown, par) = (shown.as_f64(), frame.par.as_f64());
        let (width, height) = (f64::from(frame.width), f64::from(frame.height));
        let slack = f64::from(size_alignment(in_info.format()));
        if (width - height * shown / par).abs() > slack
            && (height - width * par / shown).abs() > slack
        {
            return Err(format!(
                "{}x{} at pixel-aspect-ratio {}/{} displays {:.3}:1, not the {:.3}:1 this output's \
                 crop of the canvas displays",
                frame.width,
                frame.height,
                frame.par.num,
                frame.par.den,
                width * par / height,
                shown
            ));
        }
        let output = if (frame.width, frame.height) == (natural.width, natural.height) {
            natural
        } else {
            scaled_frame(&natural, (frame.width, frame.height))
        };
        output_config(&self.out_caps, output, natural, frame.par, self.layout)
    }
}

/// Everything fixed by one input caps.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub in_info: gst_video::VideoInfo,
    /// The content box on the canvas, and the union of every output's crop.
    pub canvas: CanvasLayout,
    /// In the order of the requests.
    pub outputs: Vec<OutputConfig>,
}

impl StreamConfig {
    /// The configuration of `in_caps` for `requests` on a `canvas` square, or a
    /// sentence saying why these caps cannot be handled.
    pub fn new(
        in_caps: &gst::CapsRef,
        requests: &[OutputRequest],
        canvas: u32,
    ) -> Result<StreamConfig, String> {
        let in_info = input_info(in_caps)?;
        let (width, height) = (in_info.width(), in_info.height());
        let align = size_alignment(in_info.format());
        let par = pixel_aspect(in_info.par());
        let naturals = requests
            .iter()
            .map(|request| natural_frame(&in_info, request, par, align))
            .collect::<Result<Vec<_>, _>>()?;
        let layouts: Vec<CanvasLayout> = match (requests, &naturals[..]) {
            ([], _) => return Err("no output to configure".into()),
            (
                [
                    OutputRequest {
                        shape: OutputShape::Expand(_),
                        ..
                    },
                ],
                [frame],
            ) => vec![
                geometry::canvas_layout_for_output(frame, par, canvas)
                    .map_err(|err| err.to_string())?,
            ],
            ([_], [frame]) => vec![official_layout(width, height, par, frame, canvas)?],
            (_, frames) => {
                let ratios = frames
                    .iter()
                    .map(|f| display_ratio(f.width, f.height, par))
                    .collect::<Result<Vec<_>, _>>()?;
                let shared = geometry::canvas_layout_for_ratios(
                    width, height, par, &ratios, canvas,
                )
                .map_err(|err| {
                    format!("cannot lay out a {width}x{height} frame on the {canvas} canvas: {err}")
                })?;
                frames.iter().map(|f| shared.layout_for_output(f)).collect()
            }
        };
        let outputs = requests
            .iter()
            .zip(naturals)
            .zip(layouts)
            .map(|((request, natural), layout)| {
                let (output, out_par) = match request.size {
                    Some(fixed) => (
                        scaled_frame(&natural, (fixed.width, fixed.height)),
                        fixed.par,
                    ),
                    None => (natural, par),
                };
                output_config(in_caps, output, natural, out_par, layout)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let union = outputs
            .iter()
            .map(|o| o.layout.output_crop)
            .reduce(|a, b| Rect {
                x0: a.x0.min(b.x0),
                y0: a.y0.min(b.y0),
                x1: a.x1.max(b.x1),
                y1: a.y1.max(b.y1),
            })
            .expect("at least one output");
        Ok(StreamConfig {
            canvas: CanvasLayout {
                output_crop: union,
                ..outputs[0].layout
            },
            in_info,
            outputs,
        })
    }

    /// Frames per second, or `None` for a variable / unknown framerate (0/1).
    pub fn fps(&self) -> Option<f64> {
        let fps = self.in_info.fps();
        (fps.numer() > 0 && fps.denom() > 0).then(|| fps.numer() as f64 / fps.denom() as f64)
    }
}

/// The input's video info, refused with a sentence when the element cannot take it.
fn input_info(in_caps: &gst::CapsRef) -> Result<gst_video::VideoInfo, String> {
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
    if in_info.interlace_mode() != gst_video::VideoInterlaceMode::Progressive {
        return Err(format!(
            "cannot handle interlaced video (interlace-mode={}): m3ddmoutpaint makes progressive \
             frames only; put deinterlace before it (… ! deinterlace ! m3ddmoutpaint)",
            in_info.interlace_mode().to_str()
        ));
    }
    let (width, height) = (in_info.width(), in_info.height());
    if width < MIN_FRAME_SIDE || height < MIN_FRAME_SIDE {
        return Err(format!(
            "frame size {width}x{height} is smaller than the {MIN_FRAME_SIDE}x{MIN_FRAME_SIDE} minimum"
        ));
    }
    Ok(in_info)
}

/// The output frame of a request with the source at its own size.
fn natural_frame(
    in_info: &gst_video::VideoInfo,
    request: &OutputRequest,
    par: Ratio,
    align: u32,
) -> Result<OutputLayout, String> {
    let (width, height) = (in_info.width(), in_info.height());
    let frame = match (request.shape, request.size) {
        // A frame fixed downstream sets the display aspect.
        (OutputShape::Aspect(_), Some(fixed)) => {
            geometry::output_layout(width, height, par, fixed.display_ratio()?, 1)
        }
        (OutputShape::Aspect(aspect), None) => {
            geometry::output_layout(width, height, par, aspect, align)
        }
        (OutputShape::Expand(fractions), _) => geometry::output_layout_with_margins(
            width,
            height,
            margins(width, height, fractions),
            align,
        ),
    }
    .map_err(|err| format!("cannot lay out a {width}x{height} frame for {request:?}: {err}"))?;
    for side in [frame.width, frame.height] {
        if side > MAX_OUTPUT_SIDE {
            return Err(format!(
                "a {width}x{height} source would give a {}x{} output, more than {MAX_OUTPUT_SIDE} pixels on a side",
                frame.width, frame.height
            ));
        }
    }
    Ok(frame)
}

/// Margins in pixels from fractions of the source (top, right, bottom, left).
fn margins(width: u32, height: u32, [top, right, bottom, left]: [f64; 4]) -> Margins {
    let px = |fraction: f64, side: u32| (fraction * side as f64).round().max(0.0) as u32;
    Margins {
        top: px(top, height),
        right: px(right, width),
        bottom: px(bottom, height),
        left: px(left, width),
    }
}

/// The official single-output layout, in display space: the source at its
/// display size, the output frame at its display aspect.
fn official_layout(
    width: u32,
    height: u32,
    par: Ratio,
    frame: &OutputLayout,
    canvas: u32,
) -> Result<CanvasLayout, String> {
    let ratio = display_ratio(frame.width, frame.height, par)?;
    geometry::canvas_layout_with_par(width, height, par, ratio, canvas).map_err(|err| {
        format!("cannot lay out a {width}x{height} frame on the {canvas} canvas: {err}")
    })
}

/// `natural` composed at `size`: the source's box scaled with the frame.
fn scaled_frame(natural: &OutputLayout, (width, height): (u32, u32)) -> OutputLayout {
    let (kx, ky) = (
        width as f64 / natural.width as f64,
        height as f64 / natural.height as f64,
    );
    let src = natural.source;
    let x0 = (src.x0 as f64 * kx).round() as u32;
    let y0 = (src.y0 as f64 * ky).round() as u32;
    let x1 = ((src.x1 as f64 * kx).round() as u32).clamp(x0 + 1, width);
    let y1 = ((src.y1 as f64 * ky).round() as u32).clamp(y0 + 1, height);
    OutputLayout {
        width,
        height,
        source: Rect { x0, y0, x1, y1 },
    }
}

/// The caps and video info of an output frame (the input's caps, or another
/// output's, with its size and pixel-aspect-ratio).
fn output_config(
    in_caps: &gst::CapsRef,
    output: OutputLayout,
    natural: OutputLayout,
    par: Ratio,
    layout: CanvasLayout,
) -> Result<OutputConfig, String> {
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
        out_caps.set("pixel-aspect-ratio", fraction(par)?);
    }
    let out_info = gst_video::VideoInfo::from_caps(&out_caps)
        .map_err(|_| format!("cannot build the output caps {out_caps}"))?;
    Ok(OutputConfig {
        out_info,
        out_caps,
        output,
        natural,
        layout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() {
        gst::init().unwrap();
    }

    fn aspect(num: u32, den: u32) -> OutputRequest {
        OutputRequest {
            shape: OutputShape::Aspect(Ratio { num, den }),
            size: None,
        }
    }

    fn caps(text: &str) -> gst::Caps {
        text.parse().unwrap()
    }

    #[test]
    fn one_output_keeps_the_official_layout() {
        init();
        let caps = caps("video/x-raw,format=I420,width=63,height=35,framerate=30/1");
        let config = StreamConfig::new(&caps, &[aspect(9, 16)], 128).unwrap();
        let out = &config.outputs[0];
        assert_eq!(out.output.source.width(), 63);
        assert_eq!(out.out_info.width() % 2, 0);
        assert_eq!(out.out_info.height() % 2, 0);
        let ratio = Ratio::new(out.output.width, out.output.height).unwrap();
        assert_eq!(
            out.layout,
            geometry::canvas_layout(63, 35, ratio, 128).unwrap()
        );
        assert!(!out.scales_source(&config.in_info));
    }

    #[test]
    fn several_outputs_share_one_canvas() {
        init();
        let caps = caps("video/x-raw,format=RGB,width=64,height=36,framerate=30/1");
        let config =
            StreamConfig::new(&caps, &[aspect(9, 16), aspect(1, 1), aspect(16, 9)], 128).unwrap();
        let sizes: Vec<_> = config
            .outputs
            .iter()
            .map(|o| (o.output.width, o.output.height))
            .collect();
        assert_eq!(sizes, vec![(64, 114), (64, 64), (64, 36)]);
        for out in &config.outputs {
            assert_eq!(out.layout.content, config.canvas.content);
            assert!(config.canvas.output_crop.contains(&out.layout.output_crop));
        }
    }

    #[test]
    fn expansion_grows_each_side_by_its_fraction() {
        init();
        let caps = caps("video/x-raw,format=RGB,width=100,height=50,framerate=30/1");
        let one_sided = OutputRequest {
            shape: OutputShape::Expand([0.0, 0.5, 0.0, 0.0]),
            size: None,
        };
        let config = StreamConfig::new(&caps, &[one_sided], 128).unwrap();
        let out = &config.outputs[0].output;
        assert_eq!((out.width, out.height), (150, 50));
        assert_eq!(out.source, Rect::at(0, 0, 100, 50));
    }

    #[test]
    fn a_size_fixed_downstream_scales_the_whole_frame() {
        init();
        let caps = caps("video/x-raw,format=I420,width=320,height=180,framerate=30/1");
        let request = OutputRequest {
            shape: OutputShape::Aspect(Ratio { num: 9, den: 16 }),
            size: Some(FixedFrame {
                width: 90,
                height: 160,
                par: Ratio { num: 1, den: 1 },
            }),
        };
        let config = StreamConfig::new(&caps, &[request], 128).unwrap();
        let out = &config.outputs[0];
        assert_eq!((out.out_info.width(), out.out_info.height()), (90, 160));
        assert_eq!(out.output.source.width(), 90);
        assert!(out.scales_source(&config.in_info));
    }

    #[test]
    fn a_refit_keeps_the_crop_and_refuses_another_display_aspect() {
        init();
        let caps = caps("video/x-raw,format=I420,width=64,height=36,framerate=30/1");
        let config = StreamConfig::new(&caps, &[aspect(9, 16)], 128).unwrap();
        let out = &config.outputs[0];
        let frame = |width, height, num, den| FixedFrame {
            width,
            height,
            par: Ratio { num, den },
        };
        let wide = out.refit(&config.in_info, frame(42, 114, 3, 2)).unwrap();
        assert_eq!((wide.out_info.width(), wide.out_info.height()), (42, 114));
        assert_eq!(wide.out_info.par(), gst::Fraction::new(3, 2));
        assert_eq!(wide.layout, out.layout);
        assert_eq!(wide.output.source, Rect::at(0, 38, 42, 36));
        let back = wide.refit(&config.in_info, frame(64, 114, 1, 1)).unwrap();
        assert_eq!(back.output, out.output);
        assert_eq!(back.out_caps, out.out_caps);
        let err = out.refit(&config.in_info, frame(64, 64, 1, 1)).unwrap_err();
        assert!(err.contains("displays 1.000:1"), "{err}");
    }

    #[test]
    fn outputs_beyond_16k_are_refused() {
        init();
        let caps = caps("video/x-raw,format=RGB,width=8000,height=100,framerate=30/1");
        let err = StreamConfig::new(&caps, &[aspect(1, 4)], 128).unwrap_err();
        assert!(err.contains("16384"), "{err}");
    }
}
