// SPDX-License-Identifier: MPL-2.0
//! Compositing unit tests: feathering on every interleaved layout and sample
//! size, its weights and edges, bad planes refused, `blit` exact and clipped.

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
            sample: Sample::U8,
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
                    let plane = TestPlane::new(width, height, bpp, padding, frame_value(source));
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
        sample: Sample::U8,
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
        sample: Sample::U8,
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
        sample: Sample::U8,
    };
    assert!(
        blit(&mut wrong, &src, 0, 0)
            .unwrap_err()
            .to_string()
            .contains("bytes per pixel")
    );
}

#[test]
fn sixteen_bit_samples_blend_their_value_and_keep_unused_bits_clear() {
    // A 4x1 plane of P010-like pixels (two 10-bit samples from bit 6): the source is x = 0.
    for (shift, edge, generated) in [
        (6u32, [1000u16, 20], [0u16, 1020]),
        (0, [4095, 7], [5, 4000]),
    ] {
        let word = |v: u16| (v << shift).to_le_bytes();
        let mut data: Vec<u8> = [edge, generated, generated, generated]
            .iter()
            .flat_map(|px| px.iter().flat_map(|&v| word(v)))
            .collect();
        let original = data.clone();
        let mut plane = PlaneMut {
            data: &mut data,
            stride: 16,
            width: 4,
            height: 1,
            bytes_per_pixel: 4,
            sample: Sample::U16Le { shift },
        };
        feather_seam(&mut plane, Rect::at(0, 0, 1, 1), 2);
        assert_eq!(data[..4], original[..4], "the source pixel");
        assert_eq!(data[12..], original[12..], "beyond the reach");
        for (x, w) in [(1usize, 1.0f64 - 1.0 / 3.0), (2, 1.0 - 2.0 / 3.0)] {
            for c in 0..2 {
                let at = x * 4 + c * 2;
                let stored = u16::from_le_bytes([data[at], data[at + 1]]);
                assert_eq!(stored & ((1 << shift) - 1), 0, "unused bits of ({x}, {c})");
                // The weight in 1/256 steps, as the blend holds it.
                let w = (w * 256.0 + 0.5).floor() / 256.0;
                let expected = w * edge[c] as f64 + (1.0 - w) * generated[c] as f64;
                assert!(
                    ((stored >> shift) as f64 - expected).abs() <= 0.5,
                    "pixel {x} sample {c}: {} for {expected}",
                    stored >> shift
                );
            }
        }
    }
}

#[test]
fn a_pixel_of_partial_samples_is_refused() {
    let mut data = vec![0u8; 12];
    let plane = PlaneMut {
        data: &mut data,
        stride: 3,
        width: 1,
        height: 4,
        bytes_per_pixel: 3,
        sample: Sample::U16Le { shift: 0 },
    };
    assert!(plane.validate().unwrap_err().to_string().contains("whole"));
}
