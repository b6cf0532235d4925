// SPDX-License-Identifier: MPL-2.0
//! Full-resolution compositing on one image plane (owner: pixels): the
//! generated area is feathered towards the source's edge, never into the
//! source, which stays bit-exact.
//!
//! `feather_seam`: a pixel outside the source box at Euclidean distance `d`
//! (1 for a direct neighbour) from the box, with `d <= feather`, becomes
//! `w · edge + (1 − w) · generated` with `w = 1 − d / (feather + 1)`, `edge`
//! being the nearest pixel of the box (its coordinates clamped into the box).
//! The blend is integer arithmetic on 8-bit weights, per component, so it
//! works for any interleaved layout (Y, UV, RGB, RGBA/BGRx...), any stride and
//! samples of one byte or of a little-endian 16-bit word (10 and 12 bits, low-
//! or high-bit aligned as in I420_10LE or P010: the value is blended, the
//! unused bits stay zero). `blit` copies a plane into another one bit-exact.

use super::error::{EngineError, Result};
use super::geometry::Rect;

/// How one component of a pixel is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// One byte.
    U8,
    /// A little-endian 16-bit word holding the value from bit `shift` up
    /// (0 for I420_10LE, 6 for P010_10LE).
    U16Le { shift: u32 },
}

impl Sample {
    pub fn bytes(self) -> usize {
        match self {
            Sample::U8 => 1,
            Sample::U16Le { .. } => 2,
        }
    }
}

/// One plane of an output frame: `height` rows of `stride` bytes; each pixel is
/// `bytes_per_pixel` bytes of interleaved components of `sample` each (3 bytes
/// for RGB, 4 for RGBA, 1 for an 8-bit Y plane, 2 for NV12's UV plane, 4 for
/// P010's).
pub struct PlaneMut<'a> {
    pub data: &'a mut [u8],
    pub stride: usize,
    pub width: u32,
    pub height: u32,
    pub bytes_per_pixel: usize,
    pub sample: Sample,
}

/// A read-only plane, laid out like `PlaneMut`.
pub struct PlaneRef<'a> {
    pub data: &'a [u8],
    pub stride: usize,
    pub width: u32,
    pub height: u32,
    pub bytes_per_pixel: usize,
}

/// Checks that `len` bytes hold `height` rows of `width` pixels at `stride`.
fn check_layout(
    len: usize,
    stride: usize,
    width: u32,
    height: u32,
    bytes_per_pixel: usize,
) -> Result<()> {
    let row_bytes = width as usize * bytes_per_pixel;
    if bytes_per_pixel == 0 {
        return Err(EngineError::InvalidInput(
            "a plane needs at least one byte per pixel".into(),
        ));
    }
    if stride < row_bytes {
        return Err(EngineError::InvalidInput(format!(
            "a plane stride of {stride} bytes is shorter than its {width} pixels of {bytes_per_pixel} bytes"
        )));
    }
    let needed = if height == 0 {
        0
    } else {
        stride * (height as usize - 1) + row_bytes
    };
    if len < needed {
        return Err(EngineError::InvalidInput(format!(
            "a {width}x{height} plane with stride {stride} needs {needed} bytes, got {len}"
        )));
    }
    Ok(())
}

impl PlaneMut<'_> {
    /// The same plane, read-only.
    pub fn as_plane_ref(&self) -> PlaneRef<'_> {
        PlaneRef {
            data: self.data,
            stride: self.stride,
            width: self.width,
            height: self.height,
            bytes_per_pixel: self.bytes_per_pixel,
        }
    }

    /// Checks that the buffer holds the plane its fields describe.
    pub fn validate(&self) -> Result<()> {
        if !self.bytes_per_pixel.is_multiple_of(self.sample.bytes()) {
            return Err(EngineError::InvalidInput(format!(
                "a pixel of {} bytes does not hold whole {:?} samples",
                self.bytes_per_pixel, self.sample
            )));
        }
        self.as_plane_ref().validate()
    }
}

impl PlaneRef<'_> {
    /// Checks that the buffer holds the plane its fields describe.
    pub fn validate(&self) -> Result<()> {
        check_layout(
            self.data.len(),
            self.stride,
            self.width,
            self.height,
            self.bytes_per_pixel,
        )
    }
}

/// Copies `src` into `dst` with its top-left pixel at `(x, y)`, bit-exact,
/// clipped to `dst`. Both planes must have the same `bytes_per_pixel`.
pub fn blit(dst: &mut PlaneMut<'_>, src: &PlaneRef<'_>, x: u32, y: u32) -> Result<()> {
    dst.validate()?;
    src.validate()?;
    if dst.bytes_per_pixel != src.bytes_per_pixel {
        return Err(EngineError::InvalidInput(format!(
            "cannot copy a plane of {} bytes per pixel into one of {}",
            src.bytes_per_pixel, dst.bytes_per_pixel
        )));
    }
    let bpp = dst.bytes_per_pixel;
    let columns = src.width.min(dst.width.saturating_sub(x)) as usize * bpp;
    let rows = src.height.min(dst.height.saturating_sub(y)) as usize;
    for row in 0..rows {
        let from = row * src.stride;
        let to = (y as usize + row) * dst.stride + x as usize * bpp;
        dst.data[to..to + columns].copy_from_slice(&src.data[from..from + columns]);
    }
    Ok(())
}

/// The fixed-point scale of the blend weights.
const WEIGHT_ONE: u32 = 256;

/// Blends the generated area within `feather` pixels of `source` towards the
/// source's nearest edge pixel; pixels inside `source` are not touched.
/// `source` is clipped to the plane; an empty source, `feather` 0, or a plane
/// whose buffer does not match its fields (see `PlaneMut::validate`) leave the
/// plane unchanged.
pub fn feather_seam(plane: &mut PlaneMut<'_>, source: Rect, feather: u32) {
    if feather == 0 || plane.validate().is_err() {
        return;
    }
    let x0 = source.x0.min(plane.width) as usize;
    let y0 = source.y0.min(plane.height) as usize;
    let x1 = source.x1.clamp(x0 as u32, plane.width) as usize;
    let y1 = source.y1.clamp(y0 as u32, plane.height) as usize;
    if x0 == x1 || y0 == y1 {
        return;
    }
    let reach = feather as usize;
    // Source weight by squared distance, for every squared distance within reach.
    let weights: Vec<u32> = (0..=reach * reach)
        .map(|squared| {
            let w = 1.0 - (squared as f32).sqrt() / (feather as f32 + 1.0);
            (w * WEIGHT_ONE as f32 + 0.5) as u32
        })
        .collect();
    let bpp = plane.bytes_per_pixel;
    let blend = |w: u32, edge: u32, generated: u32| {
        (w * edge + (WEIGHT_ONE - w) * generated + WEIGHT_ONE / 2) / WEIGHT_ONE
    };
    match plane.sample {
        Sample::U8 => feather_box(
            plane,
            [x0, y0, x1, y1],
            reach,
            &weights,
            |data, edge, target, w| {
                for c in 0..bpp {
                    data[target + c] =
                        blend(w, data[edge + c] as u32, data[target + c] as u32) as u8;
                }
            },
        ),
        Sample::U16Le { shift } => feather_box(
            plane,
            [x0, y0, x1, y1],
            reach,
            &weights,
            |data, edge, target, w| {
                let read = |data: &[u8], at: usize| {
                    u16::from_le_bytes([data[at], data[at + 1]]) as u32 >> shift
                };
                for c in (0..bpp).step_by(2) {
                    let value = blend(w, read(data, edge + c), read(data, target + c)) << shift;
                    data[target + c..target + c + 2].copy_from_slice(&(value as u16).to_le_bytes());
                }
            },
        ),
    }
}

/// Calls `blend_pixel(data, edge, target, weight)` (byte offsets of the
/// nearest edge pixel and of the pixel to blend) for every pixel within
/// `reach` of the box `[x0, y0, x1, y1]` (not empty, inside the plane).
fn feather_box(
    plane: &mut PlaneMut<'_>,
    [x0, y0, x1, y1]: [usize; 4],
    reach: usize,
    weights: &[u32],
    mut blend_pixel: impl FnMut(&mut [u8], usize, usize, u32),
) {
    let (width, height) = (plane.width as usize, plane.height as usize);
    let bpp = plane.bytes_per_pixel;
    for y in y0.saturating_sub(reach)..(y1 + reach).min(height) {
        let dy = if y < y0 {
            y0 - y
        } else {
            (y + 1).saturating_sub(y1)
        };
        let edge_row = y.clamp(y0, y1 - 1);
        let left = x0.saturating_sub(reach)..x0;
        let right = x1..(x1 + reach).min(width);
        // Beside the source only the strips left and right of it; above and below, the whole span.
        let middle = if dy == 0 { 0..0 } else { x0..x1 };
        for x in left.chain(middle).chain(right) {
            let dx = if x < x0 {
                x0 - x
            } else {
                (x + 1).saturating_sub(x1)
            };
            let squared = dx * dx + dy * dy;
            if squared > reach * reach {
                continue;
            }
            let edge = edge_row * plane.stride + x.clamp(x0, x1 - 1) * bpp;
            let target = y * plane.stride + x * bpp;
            blend_pixel(plane.data, edge, target, weights[squared]);
        }
    }
}

#[cfg(test)]
mod tests;
