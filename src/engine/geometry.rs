// SPDX-License-Identifier: MPL-2.0
//! Geometry: where a source frame lies on the square model canvas (the
//! official M3DDM rule, any canvas size, sources smaller than the canvas scaled
//! up), the official output crops, the shared canvas of a list of ratios (the
//! official `target_ratio_list`), and the full-resolution output frame (the
//! source kept pixel for pixel, grown for a display aspect ratio or by explicit
//! margins).
//!
//! The official layout (`preprocess_frames_speed_square` in `src/inference.py`)
//! grows the source frame to every target ratio, takes the largest height and
//! width of those target frames, scales so that their longer side is the canvas
//! side C, truncates the scaled source size to integers and centres it with
//! floor division. Output crops are the official `merge_frame_to_video_with_ratio`
//! crops of a C×C frame. The arithmetic is f64 in the official order, so that
//! truncation lands exactly where the official code lands.

use super::error::{EngineError, Result};

/// A ratio `num:den` (width : height), both > 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    pub num: u32,
    pub den: u32,
}

impl Ratio {
    pub fn new(num: u32, den: u32) -> Result<Ratio> {
        if num == 0 || den == 0 {
            return Err(EngineError::InvalidInput(format!(
                "ratio {num}:{den} must have both terms > 0"
            )));
        }
        Ok(Ratio { num, den })
    }

    /// `"9:16"` or `"9/16"`.
    pub fn parse(text: &str) -> Result<Ratio> {
        let bad = || EngineError::InvalidInput(format!("`{text}` is not a ratio like 9:16"));
        let (num, den) = text.trim().split_once([':', '/']).ok_or_else(bad)?;
        Ratio::new(
            num.trim().parse().map_err(|_| bad())?,
            den.trim().parse().map_err(|_| bad())?,
        )
    }

    pub fn as_f64(&self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// The same ratio, re-checked (the fields are public).
    fn checked(self) -> Result<Ratio> {
        Ratio::new(self.num, self.den)
    }
}

/// A half-open pixel rectangle `[x0,x1) × [y0,y1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rect {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

impl Rect {
    /// The `width × height` box whose top-left pixel is `(x0, y0)`.
    pub fn at(x0: u32, y0: u32, width: u32, height: u32) -> Rect {
        Rect {
            x0,
            y0,
            x1: x0 + width,
            y1: y0 + height,
        }
    }
    /// A `width × height` box centred in an `outer_w × outer_h` frame, its
    /// offsets rounded down (the official `int((W - w) / 2)`).
    pub fn centred(outer_w: u32, outer_h: u32, width: u32, height: u32) -> Rect {
        Rect::at((outer_w - width) / 2, (outer_h - height) / 2, width, height)
    }
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }
    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }
    /// Whether `other` lies entirely inside this rectangle.
    pub fn contains(&self, other: &Rect) -> bool {
        other.x0 >= self.x0 && other.y0 >= self.y0 && other.x1 <= self.x1 && other.y1 <= self.y1
    }
}

/// Where a source frame lies on the square model canvas (mask 0 inside `content`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanvasLayout {
    pub canvas: u32,
    /// The resized source on the canvas.
    pub content: Rect,
    /// The target frame (output) on the canvas: the official output crop.
    pub output_crop: Rect,
}

/// One canvas shared by several target ratios (the official `target_ratio_list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedCanvasLayout {
    pub canvas: u32,
    pub content: Rect,
    /// The official output crop of each target ratio, in the order given.
    pub output_crops: Vec<Rect>,
}

impl SharedCanvasLayout {
    /// The single-output layout of the `index`-th ratio.
    pub fn layout(&self, index: usize) -> Option<CanvasLayout> {
        let output_crop = *self.output_crops.get(index)?;
        Some(CanvasLayout {
            canvas: self.canvas,
            content: self.content,
            output_crop,
        })
    }

    /// The layout of one output of a shared run: the part of the canvas that
    /// shows the output frame `out` (the source at `out.source`) at the scale of
    /// the content box, clipped to the canvas.
    pub fn layout_for_output(&self, out: &OutputLayout) -> CanvasLayout {
        let src = out.source;
        let scale_x = self.content.width() as f64 / src.width() as f64;
        let scale_y = self.content.height() as f64 / src.height() as f64;
        let canvas = self.canvas as f64;
        let span = |content_start: u32, source_start: u32, size: u32, scale: f64| {
            let start = (content_start as f64 - source_start as f64 * scale).round();
            let end = (start + size as f64 * scale).round();
            (
                start.clamp(0.0, canvas) as u32,
                end.clamp(0.0, canvas) as u32,
            )
        };
        let (x0, x1) = span(self.content.x0, src.x0, out.width, scale_x);
        let (y0, y1) = span(self.content.y0, src.y0, out.height, scale_y);
        CanvasLayout {
            canvas: self.canvas,
            content: self.content,
            output_crop: Rect {
                x0,
                y0,
                x1: x1.max(x0 + 1),
                y1: y1.max(y0 + 1),
            },
        }
    }
}

/// The official layout of a `src_w × src_h` frame reframed to `target` on a
/// `canvas × canvas` square (official rule with `canvas` in place of 256).
pub fn canvas_layout(src_w: u32, src_h: u32, target: Ratio, canvas: u32) -> Result<CanvasLayout> {
    canvas_layout_with_par(src_w, src_h, Ratio { num: 1, den: 1 }, target, canvas)
}

/// `canvas_layout` for a source whose pixels are not square: the official rule
/// applied to the source's display size (`src_w · par` × `src_h`), so that the
/// model sees undistorted content; `target` is a display aspect ratio.
pub fn canvas_layout_with_par(
    src_w: u32,
    src_h: u32,
    par: Ratio,
    target: Ratio,
    canvas: u32,
) -> Result<CanvasLayout> {
    let shared = shared_layout(src_w, src_h, par, &[target], canvas)?;
    Ok(CanvasLayout {
        canvas,
        content: shared.content,
        output_crop: shared.output_crops[0],
    })
}

/// The official shared canvas of several target ratios (display aspect ratios
/// of a source whose pixels have the aspect `par`): the source is placed once,
/// for the largest target frame, and each ratio gets its official output crop.
pub fn canvas_layout_for_ratios(
    src_w: u32,
    src_h: u32,
    par: Ratio,
    targets: &[Ratio],
    canvas: u32,
) -> Result<SharedCanvasLayout> {
    shared_layout(src_w, src_h, par, targets, canvas)
}

fn shared_layout(
    src_w: u32,
    src_h: u32,
    par: Ratio,
    targets: &[Ratio],
    canvas: u32,
) -> Result<SharedCanvasLayout> {
    check_frame(src_w, src_h)?;
    check_canvas(canvas)?;
    let par = par.checked()?;
    if targets.is_empty() {
        return Err(EngineError::InvalidInput(
            "at least one target ratio is needed".into(),
        ));
    }
    let (w, h) = (src_w as f64 * par.num as f64 / par.den as f64, src_h as f64);
    let current = w / h;
    let (mut max_h, mut max_w) = (h, w);
    let mut output_crops = Vec::with_capacity(targets.len());
    for target in targets {
        let ratio = target.checked()?.as_f64();
        if current < ratio {
            max_w = max_w.max(ratio * h);
        } else {
            max_h = max_h.max(w / ratio);
        }
        output_crops.push(output_crop(*target, canvas));
    }
    let side = canvas as f64;
    let max_dim = max_h.max(max_w);
    // The official `int(new_size / max_dim * w)`, clipped to the canvas; at
    // least one pixel so that extreme ratios keep a content box.
    let scaled = |v: f64| ((side / max_dim * v) as u32).clamp(1, canvas);
    let (content_w, content_h) = (scaled(w), scaled(h));
    let content = Rect::centred(canvas, canvas, content_w, content_h);
    Ok(SharedCanvasLayout {
        canvas,
        content,
        output_crops,
    })
}

/// The official output crop of `target` on a `canvas × canvas` frame: the
/// largest centred box of that ratio, sizes and margins truncated.
pub fn output_crop(target: Ratio, canvas: u32) -> Rect {
    let side = canvas as f64;
    let aspect = target.as_f64();
    let truncate = |v: f64| (v as u32).clamp(1.min(canvas), canvas);
    if 1.0 > aspect {
        Rect::centred(canvas, canvas, truncate(side * aspect), canvas)
    } else {
        Rect::centred(canvas, canvas, canvas, truncate(side / aspect))
    }
}

/// The full-resolution output: the source kept at its own resolution, the frame
/// grown on the sides the ratio needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLayout {
    pub width: u32,
    pub height: u32,
    /// The source's pixels inside the output frame (exactly `src_w × src_h`).
    pub source: Rect,
}

/// Output size for a `src_w × src_h` source with pixel-aspect-ratio `par` so that
/// the output's *display* aspect ratio is `aspect`; width and height are rounded
/// up to multiples of `align` (2 for subsampled formats, else 1) and the source
/// is centred (offsets aligned too).
pub fn output_layout(
    src_w: u32,
    src_h: u32,
    par: Ratio,
    aspect: Ratio,
    align: u32,
) -> Result<OutputLayout> {
    check_frame(src_w, src_h)?;
    let (par, aspect) = (par.checked()?, aspect.checked()?);
    check_align(align)?;
    let (w, h) = (src_w as u128, src_h as u128);
    // Display aspect of the source vs the target, compared exactly:
    // (w·par.num)/(h·par.den) against aspect.num/aspect.den.
    let source_side = w * par.num as u128 * aspect.den as u128;
    let target_side = h * par.den as u128 * aspect.num as u128;
    let (exact_w, exact_h) = if source_side < target_side {
        // Too narrow: storage width = aspect · h / par.
        (
            round_div(target_side, par.num as u128 * aspect.den as u128),
            h,
        )
    } else {
        (
            w,
            round_div(source_side, par.den as u128 * aspect.num as u128),
        )
    };
    let width = align_up(to_u32(exact_w.max(w), "width")?, align)?;
    let height = align_up(to_u32(exact_h.max(h), "height")?, align)?;
    let x0 = (width - src_w) / 2 / align * align;
    let y0 = (height - src_h) / 2 / align * align;
    Ok(OutputLayout {
        width,
        height,
        source: Rect::at(x0, y0, src_w, src_h),
    })
}

/// Pixels to add on each side of the source (explicit margins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Margins {
    pub left: u32,
    pub right: u32,
    pub top: u32,
    pub bottom: u32,
}

/// The output frame for explicit margins: `left`/`top` are rounded up to
/// multiples of `align`, and the right and bottom margins grow as needed to
/// make the frame size a multiple of `align`.
pub fn output_layout_with_margins(
    src_w: u32,
    src_h: u32,
    margins: Margins,
    align: u32,
) -> Result<OutputLayout> {
    check_frame(src_w, src_h)?;
    check_align(align)?;
    let x0 = align_up(margins.left, align)?;
    let y0 = align_up(margins.top, align)?;
    let sum = |parts: [u32; 3], what: &str| {
        let total: u128 = parts.iter().map(|&p| p as u128).sum();
        to_u32(total, what)
    };
    let width = align_up(sum([x0, src_w, margins.right], "width")?, align)?;
    let height = align_up(sum([y0, src_h, margins.bottom], "height")?, align)?;
    Ok(OutputLayout {
        width,
        height,
        source: Rect::at(x0, y0, src_w, src_h),
    })
}

/// The canvas layout of any output frame (explicit margins included): the
/// output frame, in display units (`par`), is scaled so that its longer side
/// is the canvas and centred; the source keeps its place inside it. For a
/// centred source prefer `canvas_layout_with_par`, the official rule.
pub fn canvas_layout_for_output(
    out: &OutputLayout,
    par: Ratio,
    canvas: u32,
) -> Result<CanvasLayout> {
    check_frame(out.width, out.height)?;
    check_canvas(canvas)?;
    let par = par.checked()?;
    let src = out.source;
    if src.x1 > out.width || src.y1 > out.height || src.x0 >= src.x1 || src.y0 >= src.y1 {
        return Err(EngineError::InvalidInput(format!(
            "the source rectangle {src:?} does not lie inside the {}x{} output",
            out.width, out.height
        )));
    }
    let x_scale = par.num as f64 / par.den as f64;
    let (display_w, display_h) = (out.width as f64 * x_scale, out.height as f64);
    let scale = canvas as f64 / display_w.max(display_h);
    let fit = |v: f64, limit: u32| (v as u32).clamp(1, limit);
    let (crop_w, crop_h) = (
        fit(display_w * scale, canvas),
        fit(display_h * scale, canvas),
    );
    let crop = Rect::centred(canvas, canvas, crop_w, crop_h);
    let place = |start: u32, len: u32, crop_start: u32, crop_len: u32, unit: f64| {
        let offset = ((start as f64 * unit * scale) as u32).min(crop_len - 1);
        let size = fit(len as f64 * unit * scale, crop_len - offset);
        (crop_start + offset, crop_start + offset + size)
    };
    let (x0, x1) = place(src.x0, src.width(), crop.x0, crop_w, x_scale);
    let (y0, y1) = place(src.y0, src.height(), crop.y0, crop_h, 1.0);
    Ok(CanvasLayout {
        canvas,
        content: Rect { x0, y0, x1, y1 },
        output_crop: crop,
    })
}

fn check_frame(w: u32, h: u32) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(EngineError::InvalidInput(format!(
            "a {w}x{h} frame has no pixels"
        )));
    }
    Ok(())
}

fn check_canvas(canvas: u32) -> Result<()> {
    super::limits::check_canvas_side(canvas as usize)
}

fn check_align(align: u32) -> Result<()> {
    if align == 0 {
        return Err(EngineError::InvalidInput(
            "the size alignment must be at least 1".into(),
        ));
    }
    Ok(())
}

fn round_div(num: u128, den: u128) -> u128 {
    (2 * num + den) / (2 * den)
}

fn to_u32(v: u128, what: &str) -> Result<u32> {
    u32::try_from(v)
        .ok()
        .filter(|&v| v <= i32::MAX as u32)
        .ok_or_else(|| {
            EngineError::InvalidInput(format!(
                "the output {what} would be {v} pixels, more than a video frame can hold"
            ))
        })
}

fn align_up(v: u32, align: u32) -> Result<u32> {
    to_u32((v as u128).div_ceil(align as u128) * align as u128, "size")
}

#[cfg(test)]
mod tests;
