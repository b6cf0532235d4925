// SPDX-License-Identifier: MPL-2.0
//! Unit tests of the packed-RGB helpers. Expected values are worked out by hand
//! from the kernels' definitions (OpenCV INTER_LINEAR / INTER_AREA semantics).

use super::*;

fn gradient(width: u32, height: u32) -> RgbImage {
    let mut data = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            data.extend_from_slice(&[
                (x * 255 / width.max(1)) as u8,
                (y * 255 / height.max(1)) as u8,
                ((x * 7 + y * 13) % 256) as u8,
            ]);
        }
    }
    RgbImage {
        width,
        height,
        data,
    }
}

fn row(values: &[u8]) -> RgbImage {
    RgbImage {
        width: values.len() as u32,
        height: 1,
        data: values.iter().flat_map(|&v| [v, v, v]).collect(),
    }
}

fn reds(image: &RgbImage) -> Vec<u8> {
    image.data.chunks_exact(3).map(|p| p[0]).collect()
}

/// A 16:9 source reframed to 9:16 on a 256 canvas, by the official rule.
fn portrait_layout() -> CanvasLayout {
    CanvasLayout {
        canvas: 256,
        content: Rect {
            x0: 56,
            y0: 87,
            x1: 200,
            y1: 168,
        },
        output_crop: Rect {
            x0: 56,
            y0: 0,
            x1: 200,
            y1: 256,
        },
    }
}

/// An odd-sized canvas with the content off-centre and touching the top edge.
fn odd_layout() -> CanvasLayout {
    CanvasLayout {
        canvas: 17,
        content: Rect {
            x0: 3,
            y0: 0,
            x1: 12,
            y1: 9,
        },
        output_crop: Rect {
            x0: 1,
            y0: 0,
            x1: 15,
            y1: 17,
        },
    }
}

fn inside(rect: Rect, x: u32, y: u32) -> bool {
    x >= rect.x0 && x < rect.x1 && y >= rect.y0 && y < rect.y1
}

#[test]
fn enlarging_interpolates_between_half_pixel_centres() {
    // 2 → 4: source positions -0.25, 0.25, 0.75, 1.25 → 0, 63.75, 191.25, 255.
    assert_eq!(reds(&resize(&row(&[0, 255]), 4, 1)), vec![0, 64, 191, 255]);
    // 3 → 5 (scale 0.6): positions -0.2, 0.4, 1.0, 1.6, 2.2 over [0, 100, 200].
    assert_eq!(
        reds(&resize(&row(&[0, 100, 200]), 5, 1)),
        vec![0, 40, 100, 160, 200]
    );
}

#[test]
fn shrinking_by_two_averages_pairs_and_beyond_two_averages_areas() {
    assert_eq!(reds(&resize(&row(&[10, 20, 30, 50]), 2, 1)), vec![15, 40]);
    // 8 → 2 is a 4× shrink: the mean of each group of four.
    assert_eq!(
        reds(&resize(&row(&[0, 4, 8, 12, 100, 100, 200, 200]), 2, 1)),
        vec![6, 150]
    );
    // 7 → 2 (3.5×): (0 + 10 + 20 + 0.5·35) / 3.5 = 13.57 and (0.5·35 + 70 + 70 + 70) / 3.5 = 65.
    assert_eq!(
        reds(&resize(&row(&[0, 10, 20, 35, 70, 70, 70]), 2, 1)),
        vec![14, 65]
    );
}

#[test]
fn both_axes_are_resampled() {
    // A 2×2 checker enlarged to 4×4: the centre 2×2 mixes 3/4·3/4 of its own corner.
    let image = RgbImage {
        width: 2,
        height: 2,
        data: [0u8, 0, 0, 160, 160, 160, 160, 160, 160, 0, 0, 0].to_vec(),
    };
    let big = resize(&image, 4, 4);
    // At (1,1): position (0.25, 0.25): 0.75·0.75·0 + 2·0.75·0.25·160 + 0.25·0.25·0 = 60.
    assert_eq!(big.pixel(1, 1), Some([60, 60, 60]));
    assert_eq!(big.pixel(0, 0), Some([0, 0, 0]));
    assert_eq!(big.pixel(3, 0), Some([160, 160, 160]));
}

#[test]
fn a_constant_image_resizes_to_itself_at_any_size() {
    let colour = [201, 7, 99];
    for (sw, sh) in [(1, 1), (5, 3), (16, 9), (255, 144), (1920, 1080)] {
        for (dw, dh) in [(1, 1), (2, 7), (17, 13), (144, 81), (256, 256), (640, 480)] {
            let out = resize(&RgbImage::filled(sw, sh, colour), dw, dh);
            assert_eq!((out.width, out.height), (dw, dh));
            assert!(
                out.data.chunks_exact(3).all(|p| p == colour),
                "{sw}x{sh} -> {dw}x{dh} changed the colour"
            );
        }
    }
}

#[test]
fn resizing_to_the_same_size_is_the_identity() {
    let image = gradient(33, 18);
    assert_eq!(resize(&image, 33, 18), image);
    assert_eq!(
        resize_region(
            &image,
            Rect {
                x0: 0,
                y0: 0,
                x1: 33,
                y1: 18
            },
            33,
            18
        ),
        image
    );
}

#[test]
fn a_region_is_sampled_only_inside_itself() {
    let mut image = RgbImage::filled(20, 12, [255, 0, 0]);
    let region = Rect {
        x0: 5,
        y0: 3,
        x1: 11,
        y1: 8,
    };
    image.paste(
        &RgbImage::filled(region.width(), region.height(), [0, 90, 0]),
        region.x0,
        region.y0,
    );
    for (w, h) in [(3, 2), (6, 5), (13, 29), (60, 50)] {
        let out = resize_region(&image, region, w, h);
        assert!(
            out.data.chunks_exact(3).all(|p| p == [0, 90, 0]),
            "{w}x{h} read outside the region"
        );
    }
}

#[test]
fn zero_sizes_give_empty_or_black_images() {
    assert!(resize(&gradient(5, 5), 0, 3).data.is_empty());
    let from_empty = resize(&RgbImage::filled(0, 0, [0, 0, 0]), 4, 2);
    assert_eq!(from_empty, RgbImage::filled(4, 2, [0, 0, 0]));
}

#[test]
fn from_raw_checks_the_length() {
    assert!(RgbImage::from_raw(2, 2, vec![0; 12]).is_ok());
    let err = RgbImage::from_raw(2, 2, vec![0; 11]).unwrap_err();
    assert!(err.to_string().contains("needs 12 bytes"), "{err}");
}

#[test]
fn mask_zeros_match_the_content_box() {
    for layout in [portrait_layout(), odd_layout()] {
        let values = mask(&layout);
        let canvas = layout.canvas;
        assert_eq!(values.len(), (canvas * canvas) as usize);
        let zeros = values.iter().filter(|&&v| v == 0.0).count();
        assert_eq!(
            zeros,
            (layout.content.width() * layout.content.height()) as usize
        );
        for y in 0..canvas {
            for x in 0..canvas {
                let expected = if inside(layout.content, x, y) {
                    0.0
                } else {
                    1.0
                };
                assert_eq!(values[(y * canvas + x) as usize], expected);
            }
        }
    }
}

#[test]
fn canvas_inputs_keep_the_content_and_fill_the_rest() {
    for layout in [portrait_layout(), odd_layout()] {
        let content = gradient(layout.content.width(), layout.content.height());
        let inputs = canvas_inputs(&std::sync::Arc::new(content.clone()), &layout);
        let canvas = layout.canvas;
        let stretched = inputs.stretched(canvas);
        for image in [&inputs.masked, &inputs.init, &stretched] {
            assert_eq!((image.width, image.height), (canvas, canvas));
        }
        let mut filled_outside = 0;
        for y in 0..canvas {
            for x in 0..canvas {
                let masked = inputs.masked.pixel(x, y).unwrap();
                let init = inputs.init.pixel(x, y).unwrap();
                if inside(layout.content, x, y) {
                    let own = content
                        .pixel(x - layout.content.x0, y - layout.content.y0)
                        .unwrap();
                    assert_eq!(masked, own);
                    assert_eq!(init, own, "the fill changed a content pixel at ({x},{y})");
                } else {
                    assert_eq!(masked, [0, 0, 0]);
                    filled_outside += (init != [0, 0, 0]) as u32;
                }
            }
        }
        assert!(filled_outside > 0, "the init fill left the outside black");
        assert_eq!(stretched, resize(&content, canvas, canvas));
    }
}

#[test]
fn canvas_inputs_of_a_flat_source_are_flat() {
    let layout = portrait_layout();
    let content = RgbImage::filled(
        layout.content.width(),
        layout.content.height(),
        [30, 140, 250],
    );
    let inputs = canvas_inputs(&std::sync::Arc::new(content.clone()), &layout);
    assert!(
        inputs
            .init
            .data
            .chunks_exact(3)
            .all(|p| p == [30, 140, 250])
    );
    assert!(
        inputs
            .stretched(layout.canvas)
            .data
            .chunks_exact(3)
            .all(|p| p == [30, 140, 250])
    );
}

#[test]
fn canvas_inputs_resize_content_of_another_size() {
    let layout = odd_layout();
    let content = RgbImage::filled(40, 40, [12, 34, 56]);
    let inputs = canvas_inputs(&std::sync::Arc::new(content.clone()), &layout);
    assert_eq!(
        inputs.masked.pixel(layout.content.x0, layout.content.y0),
        Some([12, 34, 56])
    );
    assert_eq!(
        inputs
            .masked
            .pixel(layout.content.x1 - 1, layout.content.y1 - 1),
        Some([12, 34, 56])
    );
    assert_eq!(
        inputs.masked.pixel(layout.content.x1, layout.content.y1),
        Some([0, 0, 0])
    );
}

#[test]
fn blur_canvas_covers_the_output_crop_only() {
    for layout in [portrait_layout(), odd_layout()] {
        let content = RgbImage::filled(
            layout.content.width(),
            layout.content.height(),
            [200, 100, 20],
        );
        let out = blur_canvas(&content, &layout);
        assert_eq!((out.width, out.height), (layout.canvas, layout.canvas));
        // A flat picture blurs to itself, darkened to 85 %: 170, 85, 17.
        for y in 0..layout.canvas {
            for x in 0..layout.canvas {
                let expected = if inside(layout.output_crop, x, y) {
                    [170, 85, 17]
                } else {
                    [0, 0, 0]
                };
                assert_eq!(out.pixel(x, y), Some(expected), "at ({x},{y})");
            }
        }
    }
}

#[test]
fn blur_canvas_smooths_detail() {
    let layout = portrait_layout();
    let (w, h) = (layout.content.width(), layout.content.height());
    let checker = RgbImage {
        width: w,
        height: h,
        data: (0..w * h)
            .flat_map(|i| {
                if (i % w + i / w) % 2 == 0 {
                    [255u8; 3]
                } else {
                    [0; 3]
                }
            })
            .collect(),
    };
    let out = blur_canvas(&checker, &layout);
    let crop = layout.output_crop;
    let red = |x: u32, y: u32| out.pixel(x, y).unwrap()[0] as i32;
    let margin = 3 * (crop.width().min(crop.height()) / BLUR_RADIUS_DIVISOR);
    for y in crop.y0..crop.y1 {
        for x in crop.x0..crop.x1 {
            // Neighbours of the checker differ by 255; after the blur by at most one level.
            if x + 1 < crop.x1 {
                assert!(
                    (red(x, y) - red(x + 1, y)).abs() <= 1,
                    "horizontal detail left at ({x},{y})"
                );
            }
            if y + 1 < crop.y1 {
                assert!(
                    (red(x, y) - red(x, y + 1)).abs() <= 1,
                    "vertical detail left at ({x},{y})"
                );
            }
            // Three radii away from the crop's edges, only the mean is left: 127.5 · 0.85 = 108.4.
            let interior = x >= crop.x0 + margin
                && x < crop.x1 - margin
                && y >= crop.y0 + margin
                && y < crop.y1 - margin;
            if interior {
                assert!(
                    (red(x, y) - 108).abs() <= 1,
                    "interior pixel ({x},{y}) is {} instead of the dimmed mean",
                    red(x, y)
                );
            }
        }
    }
}

#[test]
fn the_cover_region_keeps_the_crop_aspect() {
    // 144×81 content over a 144×256 crop: full height, width 81·144/256 = 45.6 → 46, centred.
    assert_eq!(
        cover_region(
            144,
            81,
            Rect {
                x0: 0,
                y0: 0,
                x1: 144,
                y1: 256
            }
        ),
        Rect {
            x0: 49,
            y0: 0,
            x1: 95,
            y1: 81
        }
    );
    // 81×144 content over a 256×144 crop: full width, height 81·144/256 → 46.
    assert_eq!(
        cover_region(
            81,
            144,
            Rect {
                x0: 0,
                y0: 0,
                x1: 256,
                y1: 144
            }
        ),
        Rect {
            x0: 0,
            y0: 49,
            x1: 81,
            y1: 95
        }
    );
    assert_eq!(
        cover_region(
            10,
            10,
            Rect {
                x0: 2,
                y0: 2,
                x1: 7,
                y1: 7
            }
        ),
        Rect {
            x0: 0,
            y0: 0,
            x1: 10,
            y1: 10
        }
    );
}

#[test]
fn color_canvas_is_flat() {
    let out = color_canvas([1, 2, 3], 13);
    assert_eq!((out.width, out.height), (13, 13));
    assert!(out.data.chunks_exact(3).all(|p| p == [1, 2, 3]));
}

#[test]
fn paste_clips_at_the_edges() {
    let mut canvas = RgbImage::filled(5, 4, [0, 0, 0]);
    canvas.paste(&RgbImage::filled(3, 3, [9, 9, 9]), 3, 2);
    let painted = canvas
        .data
        .chunks_exact(3)
        .filter(|p| *p == [9, 9, 9])
        .count();
    assert_eq!(painted, 4);
    assert_eq!(canvas.pixel(4, 3), Some([9, 9, 9]));
    assert_eq!(canvas.pixel(2, 3), Some([0, 0, 0]));
}
