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
//! works for any interleaved layout (Y, UV, RGB, RGBA/BGRx...) and any stride.
//! `blit` copies a plane into another one bit-exact.

use super::error::{EngineError, Result};
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
    let (width, height) = (plane.width as usize, plane.height as usize);
    // Source weight by squared distance, for every squared distance within reach.
    let weights: Vec<u32> = (0..=reach * reach)
        .map(|squared| {
            let w = 1.0 - (squared as f32).sqrt() / (feather as f32 + 1.0);
            (w * WEIGHT_ONE as f32 + 0.5) as u32
        })
        .collect();
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
            let w = weights[squared];
            let edge = edge_row * plane.stride + x.clamp(x0, x1 - 1) * bpp;
            let target = y * plane.stride + x * bpp;
            for c in 0..bpp {
                let blended = w * plane.data[edge + c] as u32
                    + (WEIGHT_ONE - w) * plane.data[target + c] as u32;
                plane.data[target + c] = ((blended + WEIGHT_ONE / 2) / WEIGHT_ONE) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plane of `width × height` pixels of `bpp` bytes, owning its bytes.
    #[derive(Clone)]
    struct TestPlane {
        data: Vec<u8>,
        stride: usize,
        width: u32,
        height: u32,
        bpp: usize,
    }

    impl TestPlane {
        /// `padding` extra bytes per row; pixel bytes are `value(x, y, component)`,
        /// padding bytes 0xEE.
        fn new(
            width: u32,
            height: u32,
            bpp: usize,
            padding: usize,
            value: impl Fn(u32, u32, usize) -> u8,
        ) -> TestPlane {
            let stride = width as usize * bpp + padding;
            let mut data = vec![0xEE; stride * height as usize];
            for y in 0..height {
                for x in 0..width {
                    for c in 0..bpp {
                        data[y as usize * stride + x as usize * bpp + c] = value(x, y, c);
                    }
                }
            }
            TestPlane {
                data,
                stride,
                width,
                height,
                bpp,
            }
        }

        fn plane_mut(&mut self) -> PlaneMut<'_> {
            PlaneMut {
                data: &mut self.data,
                stride: self.stride,
                width: self.width,
                height: self.height,
                bytes_per_pixel: self.bpp,
            }
        }

        fn plane_ref(&self) -> PlaneRef<'_> {
            PlaneRef {
                data: &self.data,
                stride: self.stride,
                width: self.width,
                height: self.height,
                bytes_per_pixel: self.bpp,
            }
        }

        /// The bytes after `feather_seam(source, feather)` on a copy of this plane.
        fn feathered(&self, source: Rect, feather: u32) -> Vec<u8> {
            let mut copy = self.clone();
            feather_seam(&mut copy.plane_mut(), source, feather);
            copy.data
        }
    }

    fn inside(rect: Rect, x: u32, y: u32) -> bool {
        x >= rect.x0 && x < rect.x1 && y >= rect.y0 && y < rect.y1
    }

    /// Euclidean distance from `(x, y)` to the box.
    fn distance_to(rect: Rect, x: u32, y: u32) -> f32 {
        let dx = if x < rect.x0 {
            rect.x0 - x
        } else {
            (x + 1).saturating_sub(rect.x1)
        } as f32;
        let dy = if y < rect.y0 {
            rect.y0 - y
        } else {
            (y + 1).saturating_sub(rect.y1)
        } as f32;
        (dx * dx + dy * dy).sqrt()
    }

    /// Source pixels vary (so a wrong edge pixel shows); generated pixels are 10.
    fn frame_value(source: Rect) -> impl Fn(u32, u32, usize) -> u8 {
        move |x, y, c| {
            if inside(source, x, y) {
                100 + ((x * 3 + y * 5 + c as u32 * 7) % 100) as u8
            } else {
                10
            }
        }
    }

    #[test]
    fn source_and_far_pixels_stay_bit_exact_for_every_layout() {
        let cases = [
            (
                16,
                9,
                Rect {
                    x0: 5,
                    y0: 0,
                    x1: 11,
                    y1: 9,
                },
            ), // bands left and right
            (
                17,
                31,
                Rect {
                    x0: 0,
                    y0: 7,
                    x1: 17,
                    y1: 20,
                },
            ), // bands above and below, odd sizes
            (
                21,
                15,
                Rect {
                    x0: 4,
                    y0: 3,
                    x1: 13,
                    y1: 10,
                },
            ), // all around
            (
                12,
                8,
                Rect {
                    x0: 0,
                    y0: 0,
                    x1: 7,
                    y1: 8,
                },
            ), // touching three frame edges
        ];
        for (width, height, source) in cases {
            for bpp in 1..=4 {
                for padding in [0, 3] {
                    for feather in [1, 3, 6] {
                        let plane =
                            TestPlane::new(width, height, bpp, padding, frame_value(source));
                        let data = plane.feathered(source, feather);
                        let (original, stride) = (&plane.data, plane.stride);
                        for y in 0..height as usize {
                            for byte in 0..stride {
                                let i = y * stride + byte;
                                let x = (byte / bpp) as u32;
                                let unchanged = byte >= width as usize * bpp
                                    || inside(source, x, y as u32)
                                    || distance_to(source, x, y as u32) > feather as f32;
                                if unchanged {
                                    assert_eq!(
                                        data[i], original[i],
                                        "{width}x{height} bpp {bpp} feather {feather}: byte {byte} of row {y} changed"
                                    );
                                } else {
                                    assert!(
                                        data[i] > original[i],
                                        "{width}x{height} bpp {bpp} feather {feather}: ({x},{y}) not blended"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_weight_falls_linearly_with_distance() {
        // Source columns 4..8 of value 200, generated 0, feather 3: weights 3/4, 2/4, 1/4.
        let source = Rect {
            x0: 4,
            y0: 0,
            x1: 8,
            y1: 2,
        };
        let plane = TestPlane::new(
            12,
            2,
            1,
            0,
            |x, _, _| {
                if (4..8).contains(&x) { 200 } else { 0 }
            },
        );
        let data = plane.feathered(source, 3);
        assert_eq!(
            &data[..12],
            &[0, 50, 100, 150, 200, 200, 200, 200, 150, 100, 50, 0]
        );
        assert_eq!(&data[12..], &data[..12]);
    }

    #[test]
    fn each_pixel_blends_towards_its_nearest_edge_pixel() {
        // Two-component pixels (like NV12's UV): the edge pixel of each row differs.
        let source = Rect {
            x0: 2,
            y0: 1,
            x1: 5,
            y1: 4,
        };
        let plane = TestPlane::new(7, 6, 2, 2, |x, y, c| {
            if inside(source, x, y) {
                (40 * y + 20 * c as u32 + x) as u8
            } else {
                0
            }
        });
        let data = plane.feathered(source, 1);
        let at = |x: usize, y: usize, c: usize| data[y * plane.stride + x * 2 + c];
        // Feather 1: direct neighbours get weight 1/2 (128/256) of their edge pixel.
        assert_eq!((at(1, 2, 0), at(1, 2, 1)), (41, 51)); // edge (2,2): 82, 102
        assert_eq!((at(5, 3, 0), at(5, 3, 1)), (62, 72)); // edge (4,3): 124, 144
        assert_eq!((at(3, 0, 0), at(3, 0, 1)), (22, 32)); // edge (3,1): 43, 63
        assert_eq!((at(3, 4, 0), at(3, 4, 1)), (62, 72)); // edge (3,3): 123, 143
        // Diagonal neighbours are √2 away, beyond a feather of 1.
        assert_eq!((at(1, 0, 0), at(5, 4, 1)), (0, 0));
    }

    #[test]
    fn corners_use_the_euclidean_distance() {
        let source = Rect {
            x0: 3,
            y0: 3,
            x1: 6,
            y1: 6,
        };
        let plane = TestPlane::new(
            9,
            9,
            1,
            0,
            |x, y, _| {
                if inside(source, x, y) { 255 } else { 0 }
            },
        );
        let data = plane.feathered(source, 3);
        // (2,2) is √2 from (3,3): weight 1 − √2/4 = 0.646 → 256·0.646 = 165 → 255·165/256 = 164.4.
        assert_eq!(data[2 * 9 + 2], 164);
        // (1,1) is √8 = 2.83 away: weight 0.293 → 75/256 of 255 = 74.7.
        assert_eq!(data[9 + 1], 75);
        // (0,0) is √18 = 4.24 away, beyond the feather.
        assert_eq!(data[0], 0);
    }

    #[test]
    fn feather_zero_and_empty_sources_are_no_ops() {
        let source = Rect {
            x0: 2,
            y0: 2,
            x1: 6,
            y1: 6,
        };
        let plane = TestPlane::new(8, 8, 3, 1, frame_value(source));
        for (rect, feather) in [
            (source, 0),
            (
                Rect {
                    x0: 3,
                    y0: 2,
                    x1: 3,
                    y1: 6,
                },
                4,
            ),
            (
                Rect {
                    x0: 9,
                    y0: 9,
                    x1: 12,
                    y1: 12,
                },
                4,
            ),
        ] {
            assert_eq!(plane.feathered(rect, feather), plane.data);
        }
    }

    #[test]
    fn a_short_buffer_is_refused_not_indexed() {
        let mut data = vec![0u8; 20];
        let mut plane = PlaneMut {
            data: &mut data,
            stride: 8,
            width: 4,
            height: 3,
            bytes_per_pixel: 2,
        };
        let err = plane.validate().unwrap_err();
        assert!(err.to_string().contains("needs 24 bytes, got 20"), "{err}");
        feather_seam(
            &mut plane,
            Rect {
                x0: 1,
                y0: 0,
                x1: 3,
                y1: 3,
            },
            2,
        );
        assert!(data.iter().all(|&b| b == 0));
        let mut data = vec![0u8; 30];
        let plane = PlaneMut {
            data: &mut data,
            stride: 5,
            width: 4,
            height: 3,
            bytes_per_pixel: 2,
        };
        assert!(
            plane
                .validate()
                .unwrap_err()
                .to_string()
                .contains("stride of 5 bytes")
        );
    }

    #[test]
    fn blit_copies_bit_exact_and_clips() {
        let source = TestPlane::new(3, 2, 2, 1, |x, y, c| (x * 10 + y * 100 + c as u32) as u8);
        let src = source.plane_ref();
        let mut dst = TestPlane::new(4, 3, 2, 2, |_, _, _| 0);
        blit(&mut dst.plane_mut(), &src, 2, 2).unwrap();
        let (dst_data, dst_stride) = (&dst.data, dst.stride);
        // Only (0,0) and (1,0) of the source fit, at (2,2) and (3,2).
        let row2 = &dst_data[2 * dst_stride..3 * dst_stride];
        assert_eq!(row2, &[0, 0, 0, 0, 0, 1, 10, 11, 0xEE, 0xEE]);
        assert!(
            dst_data[..2 * dst_stride]
                .iter()
                .all(|&b| b == 0 || b == 0xEE)
        );
        let mut other = vec![0u8; 12];
        let mut wrong = PlaneMut {
            data: &mut other,
            stride: 4,
            width: 4,
            height: 3,
            bytes_per_pixel: 1,
        };
        assert!(
            blit(&mut wrong, &src, 0, 0)
                .unwrap_err()
                .to_string()
                .contains("bytes per pixel")
        );
    }
}
