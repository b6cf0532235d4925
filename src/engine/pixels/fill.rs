// SPDX-License-Identifier: MPL-2.0
//! The init fill of the new area (owner: pixels): edge extension with a blur
//! that grows with the distance from the content.
//!
//! The official pipeline fills the area outside the source with OpenCV's Telea
//! inpainting (radius 5), which carries the edge colours outwards along
//! straight lines. We do the same, cheaply and deterministically:
//! - a pixel above (below) the content box takes the content's top (bottom)
//!   row, replicated beyond the box's ends and box-blurred along the row with
//!   radius `1 + d / 2`, `d` being its distance to the box: streaks that are
//!   sharp next to the seam and soften further out;
//! - a pixel left (right) of the box does the same with the left (right)
//!   column, blurred along the column;
//! - in the corners, outside the box on both axes, the two are mixed as
//!   `(dy · row value + dx · column value) / (dx + dy)`, continuous with both bands.
//!
//! Pixels inside the box are never written. Cost: one running-sum pass per
//! outside row and column, `f32` throughout, no allocation per pixel.

use super::RgbImage;
use super::resample::{box_line, to_u8};
use crate::engine::geometry::Rect;

/// The blur radius of the extension at distance `distance` from the content.
fn radius_at(distance: usize) -> usize {
    1 + distance / 2
}

/// Distance of `position` from the span `[start, end)`: 0 inside, 1 next to it.
fn distance(position: usize, start: usize, end: usize) -> usize {
    if position < start {
        start - position
    } else if position >= end {
        position + 1 - end
    } else {
        0
    }
}

/// `count` pixels read at `pixel(i)` for `i` in `0..count`, as interleaved `f32`.
fn edge_line(image: &RgbImage, count: usize, pixel: impl Fn(usize) -> (usize, usize)) -> Vec<f32> {
    let width = image.width as usize;
    (0..count)
        .flat_map(|i| {
            let (x, y) = pixel(i);
            let at = (y * width + x) * 3;
            [
                image.data[at] as f32,
                image.data[at + 1] as f32,
                image.data[at + 2] as f32,
            ]
        })
        .collect()
}

/// Fills every pixel of `image` outside `keep` from the pixels inside it; pixels
/// inside `keep` stay unchanged. An empty `keep` leaves the image as it is.
pub(crate) fn fill_outside(image: &mut RgbImage, keep: Rect) {
    let (width, height) = (image.width as usize, image.height as usize);
    let (x0, x1) = (
        keep.x0.min(image.width) as usize,
        keep.x1.min(image.width) as usize,
    );
    let (y0, y1) = (
        keep.y0.min(image.height) as usize,
        keep.y1.min(image.height) as usize,
    );
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    // The box's edges, replicated over the whole width (rows) or height (columns).
    let top = edge_line(image, width, |x| (x.clamp(x0, x1 - 1), y0));
    let bottom = edge_line(image, width, |x| (x.clamp(x0, x1 - 1), y1 - 1));
    let left = edge_line(image, height, |y| (x0, y.clamp(y0, y1 - 1)));
    let right = edge_line(image, height, |y| (x1 - 1, y.clamp(y0, y1 - 1)));

    let row_len = width * 3;
    let mut row_values = vec![0f32; width * height * 3];
    for y in (0..y0).chain(y1..height) {
        let edge = if y < y0 { &top } else { &bottom };
        box_line(
            edge,
            radius_at(distance(y, y0, y1)),
            &mut row_values[y * row_len..(y + 1) * row_len],
        );
        let values = &row_values[y * row_len + x0 * 3..y * row_len + x1 * 3];
        for (out, &value) in image.data[y * row_len + x0 * 3..y * row_len + x1 * 3]
            .iter_mut()
            .zip(values)
        {
            *out = to_u8(value);
        }
    }
    let mut column = vec![0f32; height * 3];
    for x in (0..x0).chain(x1..width) {
        let dx = distance(x, x0, x1);
        box_line(
            if x < x0 { &left } else { &right },
            radius_at(dx),
            &mut column,
        );
        for (y, column_value) in column.chunks_exact(3).enumerate() {
            let dy = distance(y, y0, y1);
            let at = y * row_len + x * 3;
            let row_value = &row_values[at..at + 3];
            let row_weight = dy as f32 / (dx + dy) as f32;
            for c in 0..3 {
                image.data[at + c] =
                    to_u8(row_weight * row_value[c] + (1.0 - row_weight) * column_value[c]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn striped(width: u32, height: u32) -> RgbImage {
        let mut data = Vec::with_capacity((width * height * 3) as usize);
        for y in 0..height {
            for x in 0..width {
                data.extend_from_slice(&[
                    (x * 37 % 256) as u8,
                    (y * 53 % 256) as u8,
                    ((x + y) * 11 % 256) as u8,
                ]);
            }
        }
        RgbImage {
            width,
            height,
            data,
        }
    }

    #[test]
    fn known_pixels_are_untouched_and_all_others_filled() {
        for (w, h, keep) in [
            (
                16,
                16,
                Rect {
                    x0: 4,
                    y0: 0,
                    x1: 12,
                    y1: 16,
                },
            ),
            (
                17,
                13,
                Rect {
                    x0: 0,
                    y0: 3,
                    x1: 17,
                    y1: 10,
                },
            ),
            (
                9,
                31,
                Rect {
                    x0: 2,
                    y0: 5,
                    x1: 7,
                    y1: 6,
                },
            ),
        ] {
            let original = striped(w, h);
            let mut image = original.clone();
            // Blank the area to fill, so that a fill that does nothing is caught.
            for y in 0..h {
                for x in 0..w {
                    let inside = x >= keep.x0 && x < keep.x1 && y >= keep.y0 && y < keep.y1;
                    if !inside {
                        let i = ((y * w + x) * 3) as usize;
                        image.data[i..i + 3].copy_from_slice(&[0, 0, 0]);
                    }
                }
            }
            let before = image.clone();
            fill_outside(&mut image, keep);
            for y in keep.y0..keep.y1 {
                for x in keep.x0..keep.x1 {
                    let i = ((y * w + x) * 3) as usize;
                    assert_eq!(
                        image.data[i..i + 3],
                        original.data[i..i + 3],
                        "{w}x{h}: known pixel ({x},{y}) changed"
                    );
                }
            }
            assert_ne!(image, before, "{w}x{h}: nothing was filled");
        }
    }

    #[test]
    fn a_flat_source_fills_with_its_colour() {
        let mut image = RgbImage {
            width: 21,
            height: 12,
            data: vec![0; 21 * 12 * 3],
        };
        let keep = Rect {
            x0: 5,
            y0: 2,
            x1: 11,
            y1: 9,
        };
        for y in keep.y0..keep.y1 {
            for x in keep.x0..keep.x1 {
                let i = ((y * 21 + x) * 3) as usize;
                image.data[i..i + 3].copy_from_slice(&[200, 40, 7]);
            }
        }
        fill_outside(&mut image, keep);
        for pixel in image.data.chunks_exact(3) {
            assert_eq!(pixel, [200, 40, 7]);
        }
    }

    #[test]
    fn the_fill_extends_each_edge_colour_outwards() {
        // Left half of the source black, right half white: the band on the left
        // must come out dark, the one on the right light.
        let (w, h) = (40u32, 10u32);
        let keep = Rect {
            x0: 10,
            y0: 0,
            x1: 30,
            y1: h,
        };
        let mut image = RgbImage {
            width: w,
            height: h,
            data: vec![128; (w * h * 3) as usize],
        };
        for y in 0..h {
            for x in keep.x0..keep.x1 {
                let value = if x < 20 { 0 } else { 255 };
                let i = ((y * w + x) * 3) as usize;
                image.data[i..i + 3].fill(value);
            }
        }
        fill_outside(&mut image, keep);
        let at = |x: u32, y: u32| image.data[((y * w + x) * 3) as usize];
        for y in 0..h {
            assert!(at(9, y) < 40, "next to the black edge: {}", at(9, y));
            assert!(at(30, y) > 215, "next to the white edge: {}", at(30, y));
            assert!(at(0, y) < at(39, y));
        }
    }

    #[test]
    fn bands_extend_the_edge_blurred_by_distance() {
        // A 5×3 box at (2,2) in a 9×7 image, all 0 but its top-left pixel, 90.
        // Extended edges: top row 90, 90, 90, 0, 0, ... (columns 0..9);
        // left column 90, 90, 90, 0, 0, ... (rows 0..7).
        let (w, h) = (9u32, 7u32);
        let keep = Rect {
            x0: 2,
            y0: 2,
            x1: 7,
            y1: 5,
        };
        let mut image = RgbImage {
            width: w,
            height: h,
            data: vec![0; (w * h * 3) as usize],
        };
        let at = |x: u32, y: u32| ((y * w + x) * 3) as usize;
        image.data[at(2, 2)..at(2, 2) + 3].fill(90);
        fill_outside(&mut image, keep);
        // Row 1 (distance 1, radius 1): means of three.
        assert_eq!(image.data[at(2, 1)], 60);
        assert_eq!(image.data[at(3, 1)], 30);
        assert_eq!(image.data[at(4, 1)], 0);
        // Row 0 (distance 2, radius 2): means of five.
        assert_eq!(image.data[at(2, 0)], 54);
        assert_eq!(image.data[at(4, 0)], 18);
        // Corner (1,0): dx 1, dy 2: 2/3 of the row value (72) + 1/3 of the column value (90).
        assert_eq!(image.data[at(1, 0)], 78);
        // Corner (0,1), the mirror case: 1/3 of 90 + 2/3 of 72.
        assert_eq!(image.data[at(0, 1)], 78);
        // Left band (1,3): dx 1, radius 1 over the column: (90 + 0 + 0) / 3.
        assert_eq!(image.data[at(1, 3)], 30);
    }

    #[test]
    fn an_empty_keep_box_changes_nothing() {
        let mut image = striped(8, 8);
        let before = image.clone();
        fill_outside(
            &mut image,
            Rect {
                x0: 3,
                y0: 3,
                x1: 3,
                y1: 8,
            },
        );
        assert_eq!(image, before);
    }
}
