// SPDX-License-Identifier: MPL-2.0
//! Geometry: the official M3DDM canvas layout, the full-resolution output
//! layout, and the output crop inside the canvas. (API stub; owner: geometry.)

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
            return Err(EngineError::InvalidInput(format!("ratio {num}:{den} must have both terms > 0")));
        }
        Ok(Ratio { num, den })
    }
    pub fn as_f64(&self) -> f64 {
        self.num as f64 / self.den as f64
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
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }
    pub fn height(&self) -> u32 {
        self.y1 - self.y0
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

/// The official layout of a `src_w × src_h` frame reframed to `target` on a
/// `canvas × canvas` square (official rule with `canvas` in place of 256).
pub fn canvas_layout(_src_w: u32, _src_h: u32, _target: Ratio, _canvas: u32) -> Result<CanvasLayout> {
    Err(EngineError::InvalidInput("canvas_layout not implemented yet".into()))
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
pub fn output_layout(_src_w: u32, _src_h: u32, _par: Ratio, _aspect: Ratio, _align: u32) -> Result<OutputLayout> {
    Err(EngineError::InvalidInput("output_layout not implemented yet".into()))
}
