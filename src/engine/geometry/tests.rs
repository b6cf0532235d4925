// SPDX-License-Identifier: MPL-2.0
//! Geometry unit tests: hand-computed official layouts, invariants over odd
//! sizes, sources smaller than the canvas, ratio lists, full-resolution output
//! sizes (pixel aspect ratio, alignment), margins, and every error path.

use super::*;

fn ratio(text: &str) -> Ratio {
    Ratio::parse(text).unwrap()
}

const RATIOS: [&str; 7] = ["9:16", "16:9", "1:1", "3:4", "4:3", "2:3", "21:9"];

#[test]
fn official_layout_of_full_hd_to_portrait() {
    // max_h = 1920 / 0.5625 = 3413.3; scale 256/3413.3 = 0.075:
    // 1920 -> 144, 1080 -> 81; centred: (256-144)/2 = 56, (256-81)/2 = 87.
    let l = canvas_layout(1920, 1080, ratio("9:16"), 256).unwrap();
    assert_eq!(
        l.content,
        Rect {
            x0: 56,
            y0: 87,
            x1: 200,
            y1: 168
        }
    );
    // Official crop: int(256 * 0.5625) = 144 wide, margin 56.
    assert_eq!(
        l.output_crop,
        Rect {
            x0: 56,
            y0: 0,
            x1: 200,
            y1: 256
        }
    );
}

#[test]
fn odd_sizes_keep_the_official_invariants() {
    for canvas in [128, 256, 136] {
        for (w, h) in [
            (1279, 719),
            (641, 479),
            (355, 199),
            (1, 1),
            (3, 1001),
            (1001, 3),
            (17, 31),
            (4095, 2161),
        ] {
            for r in RATIOS {
                let l = canvas_layout(w, h, ratio(r), canvas).unwrap();
                let c = l.content;
                let label = format!("{w}x{h} {r} on {canvas}: {c:?} crop {:?}", l.output_crop);
                assert!(
                    c.width() >= 1 && c.height() >= 1 && c.x1 <= canvas && c.y1 <= canvas,
                    "{label}"
                );
                // Centred with floor division.
                assert_eq!(c.x0, (canvas - c.width()) / 2, "{label}");
                assert_eq!(c.y0, (canvas - c.height()) / 2, "{label}");
                // Aspect kept up to the truncation of each side (< 1 px each).
                let skew = (c.width() as i64 * h as i64 - c.height() as i64 * w as i64).abs();
                if c.width() > 1 && c.height() > 1 {
                    assert!(skew < (w + h) as i64, "{label}: skew {skew}");
                }
                // The target frame is the output crop: the content spans it
                // along the side the ratio keeps (up to 1 px of truncation).
                let crop = l.output_crop;
                let target_wider = (w as f64 / h as f64) < ratio(r).as_f64();
                let (span, full) = if target_wider {
                    (c.height(), crop.height())
                } else {
                    (c.width(), crop.width())
                };
                if span > 1 {
                    assert!(span.abs_diff(full) <= 1, "{label}");
                }
                assert!(crop.x0 <= c.x0 + 1 && crop.y0 <= c.y0 + 1, "{label}");
                assert!(c.x1 <= crop.x1 + 1 && c.y1 <= crop.y1 + 1, "{label}");
            }
        }
    }
}

#[test]
fn sources_smaller_than_the_canvas_are_scaled_up() {
    // max_h = 100 / 0.5625 = 177.8 < 256 (the official code fails here);
    // scale 1.44: 100 -> 144, 56 -> 80.64 -> 80.
    let l = canvas_layout(100, 56, ratio("9:16"), 256).unwrap();
    assert_eq!(
        l.content,
        Rect {
            x0: 56,
            y0: 88,
            x1: 200,
            y1: 168
        }
    );
    let tiny = canvas_layout(2, 2, ratio("16:9"), 128).unwrap();
    assert_eq!(
        tiny.content,
        Rect {
            x0: 28,
            y0: 28,
            x1: 100,
            y1: 100
        }
    );
}

#[test]
fn a_ratio_list_shares_one_canvas() {
    let both = canvas_layout_for_ratios(
        1920,
        1080,
        ratio("1:1"),
        &[ratio("9:16"), ratio("16:9")],
        256,
    )
    .unwrap();
    let portrait = canvas_layout(1920, 1080, ratio("9:16"), 256).unwrap();
    assert_eq!(both.content, portrait.content);
    assert_eq!(
        both.output_crops,
        vec![
            output_crop(ratio("9:16"), 256),
            output_crop(ratio("16:9"), 256)
        ]
    );
    assert_eq!(both.layout(0).unwrap(), portrait);
    assert!(both.layout(2).is_none());
    // A 4:3 source with 9:16 and 21:9: padded both ways, so the content is
    // smaller than for either ratio alone.
    let mixed =
        canvas_layout_for_ratios(640, 480, ratio("1:1"), &[ratio("9:16"), ratio("21:9")], 256)
            .unwrap();
    let alone = canvas_layout(640, 480, ratio("9:16"), 256).unwrap();
    assert!(mixed.content.width() <= alone.content.width());
    for crop in &mixed.output_crops {
        assert!(
            Rect {
                x0: 0,
                y0: 0,
                x1: 256,
                y1: 256
            }
            .contains(crop)
        );
    }
}

#[test]
fn output_crops_follow_the_official_truncation() {
    assert_eq!(
        output_crop(ratio("16:9"), 256),
        Rect {
            x0: 0,
            y0: 56,
            x1: 256,
            y1: 200
        }
    );
    assert_eq!(
        output_crop(ratio("1:1"), 128),
        Rect {
            x0: 0,
            y0: 0,
            x1: 128,
            y1: 128
        }
    );
    // 136 * 3/4 = 102, margin int(34/2) = 17.
    assert_eq!(
        output_crop(ratio("3:4"), 136),
        Rect {
            x0: 17,
            y0: 0,
            x1: 119,
            y1: 136
        }
    );
}

#[test]
fn output_layout_grows_the_needed_side() {
    let square = Ratio::new(1, 1).unwrap();
    // 1920 * 16/9 = 3413.3 -> 3413 (align 1), 3414 (align 2); offset 1167 -> 1166.
    let a = output_layout(1920, 1080, square, ratio("9:16"), 1).unwrap();
    assert_eq!(
        (a.width, a.height, a.source),
        (
            1920,
            3413,
            Rect {
                x0: 0,
                y0: 1166,
                x1: 1920,
                y1: 2246
            }
        )
    );
    let b = output_layout(1920, 1080, square, ratio("9:16"), 2).unwrap();
    assert_eq!((b.width, b.height, b.source.y0), (1920, 3414, 1166));
    // Already at the ratio: unchanged.
    let same = output_layout(1920, 1080, square, ratio("16:9"), 2).unwrap();
    assert_eq!(
        (same.width, same.height, same.source.x0, same.source.y0),
        (1920, 1080, 0, 0)
    );
    // PAL 4:3 (PAR 16:15, 768 display pixels wide) to 16:9: 1024 display = 960 storage.
    let pal = output_layout(720, 576, ratio("16:15"), ratio("16:9"), 2).unwrap();
    assert_eq!((pal.width, pal.height, pal.source.x0), (960, 576, 120));
}

#[test]
fn output_layout_on_odd_sizes_keeps_every_source_pixel() {
    for (w, h) in [(641, 479), (1279, 719), (1, 1), (3, 2), (999, 1001)] {
        for r in RATIOS {
            for align in [1, 2, 4] {
                for par in [ratio("1:1"), ratio("16:15"), ratio("8:9")] {
                    let o = output_layout(w, h, par, ratio(r), align).unwrap();
                    let label = format!("{w}x{h} par {par:?} to {r} align {align}: {o:?}");
                    assert_eq!((o.source.width(), o.source.height()), (w, h), "{label}");
                    assert!(o.source.x1 <= o.width && o.source.y1 <= o.height, "{label}");
                    assert_eq!((o.width % align, o.height % align), (0, 0), "{label}");
                    assert_eq!(
                        (o.source.x0 % align, o.source.y0 % align),
                        (0, 0),
                        "{label}"
                    );
                    // Only one side grows (beyond alignment).
                    assert!(o.width < w + align || o.height < h + align, "{label}");
                    // The display aspect is the target's, up to rounding by
                    // half a pixel plus the alignment on the grown side.
                    let dar = o.width as f64 * par.as_f64() / o.height as f64;
                    let slack = (align as f64 + 0.5) * par.as_f64().max(1.0)
                        / (o.height.min(o.width) as f64);
                    let target = ratio(r).as_f64();
                    let grown = o.width >= w + align || o.height >= h + align;
                    if grown {
                        assert!(
                            (dar / target - 1.0).abs() <= slack * target.max(1.0 / target) * 2.0,
                            "{label}: {dar}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn margins_expand_any_side() {
    let m = Margins {
        left: 3,
        right: 5,
        top: 0,
        bottom: 1,
    };
    let o = output_layout_with_margins(641, 479, m, 2).unwrap();
    assert_eq!((o.width, o.height), (650, 480));
    assert_eq!(
        o.source,
        Rect {
            x0: 4,
            y0: 0,
            x1: 645,
            y1: 479
        }
    );
    let plain = output_layout_with_margins(641, 479, Margins::default(), 1).unwrap();
    assert_eq!((plain.width, plain.height, plain.source.x0), (641, 479, 0));

    // Left margin only: on the canvas the content touches the crop's right edge.
    let left = output_layout_with_margins(
        640,
        640,
        Margins {
            left: 640,
            ..Default::default()
        },
        1,
    )
    .unwrap();
    let l = canvas_layout_for_output(&left, ratio("1:1"), 256).unwrap();
    assert_eq!(
        l.output_crop,
        Rect {
            x0: 0,
            y0: 64,
            x1: 256,
            y1: 192
        }
    );
    assert_eq!(
        l.content,
        Rect {
            x0: 128,
            y0: 64,
            x1: 256,
            y1: 192
        }
    );
}

#[test]
fn the_general_canvas_layout_agrees_with_the_official_one_for_centred_sources() {
    for (w, h) in [(1920, 1080), (641, 479), (1080, 1920), (355, 199)] {
        for r in RATIOS {
            let official = canvas_layout(w, h, ratio(r), 256).unwrap();
            let out = output_layout(w, h, ratio("1:1"), ratio(r), 1).unwrap();
            let general = canvas_layout_for_output(&out, ratio("1:1"), 256).unwrap();
            let label = format!("{w}x{h} {r}: {official:?} vs {general:?}");
            assert!(general.output_crop.contains(&general.content), "{label}");
            for (a, b) in [
                (official.content.x0, general.content.x0),
                (official.content.x1, general.content.x1),
                (official.content.y0, general.content.y0),
                (official.content.y1, general.content.y1),
            ] {
                assert!(a.abs_diff(b) <= 1, "{label}");
            }
        }
    }
}

#[test]
fn bad_geometry_is_an_error() {
    assert!(Ratio::new(0, 16).is_err());
    assert!(Ratio::new(9, 0).is_err());
    for text in ["9:0", "0/1", "916", "a:b", "", "9:16:2"] {
        assert!(Ratio::parse(text).is_err(), "{text}");
    }
    assert_eq!(ratio(" 9 / 16 "), Ratio { num: 9, den: 16 });
    let r = ratio("9:16");
    let zero = Ratio { num: 0, den: 1 };
    assert!(canvas_layout(0, 1080, r, 256).is_err());
    assert!(canvas_layout(1920, 0, r, 256).is_err());
    assert!(canvas_layout(1920, 1080, zero, 256).is_err());
    assert!(canvas_layout(1920, 1080, r, 0).is_err());
    assert!(canvas_layout(1920, 1080, r, 100).is_err());
    assert!(canvas_layout_for_ratios(1920, 1080, ratio("1:1"), &[], 256).is_err());
    assert!(canvas_layout_with_par(1920, 1080, zero, r, 256).is_err());
    assert!(output_layout(0, 1, ratio("1:1"), r, 1).is_err());
    assert!(output_layout(10, 10, ratio("1:1"), zero, 1).is_err());
    assert!(output_layout(10, 10, zero, r, 1).is_err());
    assert!(output_layout(10, 10, ratio("1:1"), r, 0).is_err());
    assert!(output_layout(4_000_000_000, 10, ratio("1:1"), ratio("1000:1"), 1).is_err());
    assert!(output_layout(10, 4_000_000, ratio("1:1"), ratio("1000:1"), 1).is_err());
    assert!(output_layout_with_margins(0, 10, Margins::default(), 1).is_err());
    assert!(
        output_layout_with_margins(
            10,
            10,
            Margins {
                right: u32::MAX,
                ..Default::default()
            },
            1
        )
        .is_err()
    );
    let outside = OutputLayout {
        width: 10,
        height: 10,
        source: Rect {
            x0: 5,
            y0: 0,
            x1: 11,
            y1: 10,
        },
    };
    assert!(canvas_layout_for_output(&outside, ratio("1:1"), 256).is_err());
}

#[test]
fn each_output_of_a_shared_canvas_is_its_frame_at_the_content_scale() {
    let ratios = [ratio("9:16"), ratio("1:1"), ratio("16:9")];
    let shared = canvas_layout_for_ratios(1920, 1080, ratio("1:1"), &ratios, 256).unwrap();
    for target in ratios {
        let out = output_layout(1920, 1080, ratio("1:1"), target, 2).unwrap();
        let layout = shared.layout_for_output(&out);
        let crop = layout.output_crop;
        // The crop has the output's ratio (to a pixel) and holds the content box
        // where the output holds the source.
        let crop_ratio = crop.width() as f64 / crop.height() as f64;
        assert!(
            (crop_ratio - target.as_f64()).abs() * crop.height() as f64 <= 1.5,
            "{target:?}: crop {crop:?}"
        );
        assert!(crop.contains(&shared.content), "{target:?}: {crop:?}");
        let scale = crop.width() as f64 / out.width as f64;
        let left = (shared.content.x0 - crop.x0) as f64 / scale;
        assert!(
            (left - out.source.x0 as f64).abs() <= 1.5,
            "{target:?}: {left}"
        );
    }
    // The 9:16 frame is the tallest one: its crop is the official one (to a pixel).
    let tall = output_layout(1920, 1080, ratio("1:1"), ratio("9:16"), 2).unwrap();
    let official = shared.output_crops[0];
    let crop = shared.layout_for_output(&tall).output_crop;
    assert!(crop.x0.abs_diff(official.x0) <= 1 && crop.width().abs_diff(official.width()) <= 1);
}
