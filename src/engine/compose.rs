// SPDX-License-Identifier: MPL-2.0
//! Full-resolution compositing on one image plane (API stub; owner: pixels):
//! the generated area is feathered towards the source's edge, never into the
//! source, which stays bit-exact.

use super::geometry::Rect;

/// One plane of an output frame: `height` rows of `stride` bytes; each pixel is
/// `bytes_per_pixel` interleaved components (3 for RGB, 4 for RGBA, 1 for a Y
/// plane, 2 for NV12's UV plane).
pub struct PlaneMut<'a> {
    pub data: &'a mut [u8],
    pub stride: usize,
    pub width: u32,
    pub height: u32,
    pub bytes_per_pixel: usize,
}

/// Blends the generated area within `feather` pixels of `source` towards the
/// source's nearest edge pixel; pixels inside `source` are not touched.
pub fn feather_seam(_plane: &mut PlaneMut<'_>, _source: Rect, _feather: u32) {
    unimplemented!("compose::feather_seam")
}
