// SPDX-License-Identifier: MPL-2.0
//! Packed-RGB pixel helpers (API stub; owner: pixels): resizing, blurring,
//! the init fill of the new area, and the canvases of the three fill modes.

use super::geometry::{CanvasLayout, Rect};

/// A packed RGB8 image, `width * height * 3` bytes, rows without padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// Bilinear resize (half-pixel centres).
pub fn resize(_src: &RgbImage, _width: u32, _height: u32) -> RgbImage {
    unimplemented!("pixels::resize")
}

/// The model inputs of one frame at the canvas: `masked` (0 outside the content
/// box), `init` (the outside filled by the engine's init fill) and `stretched`
/// (the whole source stretched to the canvas, for global frames).
pub struct CanvasInputs {
    pub masked: RgbImage,
    pub init: RgbImage,
    pub stretched: RgbImage,
}

/// Builds the canvas inputs from the source already scaled to `layout.content`.
pub fn canvas_inputs(_content: &RgbImage, _layout: &CanvasLayout) -> CanvasInputs {
    unimplemented!("pixels::canvas_inputs")
}

/// The `blur` fill: the source stretched over the output crop and strongly blurred, as a canvas image.
pub fn blur_canvas(_content: &RgbImage, _layout: &CanvasLayout) -> RgbImage {
    unimplemented!("pixels::blur_canvas")
}

/// The `color` fill: a flat canvas.
pub fn color_canvas(_rgb: [u8; 3], _canvas: u32) -> RgbImage {
    unimplemented!("pixels::color_canvas")
}

/// The mask of a layout: 1.0 where content must be generated, `canvas * canvas` values.
pub fn mask(_layout: &CanvasLayout) -> Vec<f32> {
    unimplemented!("pixels::mask")
}

#[allow(dead_code)]
fn _uses(_: Rect) {}
