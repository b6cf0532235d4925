// SPDX-License-Identifier: MPL-2.0
//! Harness tests of the formats beyond 8-bit RGB and 4:2:0, family by family
//! (8-bit packed 4:2:2, 4:2:2 and 4:4:4 planar and semi-planar, planar RGB,
//! 10- and 12-bit, v210): every frame out in the input's format, the source
//! in the output sample for sample (read through GStreamer's unpacking, so
//! 10-bit and v210 samples are compared as values), and the new area filled
//! at the output's depth by `color`, `blur` and `outpaint` (the tiny model, 1
//! step); sources that grow vertically and horizontally, at odd sizes, so
//! that partial chroma pairs and v210 groups are crossed. Also the warning of
//! a PQ/HLG input.

mod common;

use common::samples::{Unpacked, mean_of};
use common::*;
use gst::prelude::*;
use gst_video::prelude::*;

/// Input sizes and aspects: growing downwards from a wide source, sideways
/// from a narrow one (the source's left edge inside a v210 group), odd sizes.
const SHAPES: [((u32, u32), &str); 3] =
    [((64, 36), "9/16"), ((46, 36), "16/9"), ((41, 27), "16/9")];

/// The fill colour of the colour runs (0xAARRGGBB) and its RGB.
const FILL: (&str, [u8; 3]) = ("0xff20c040", [0x20, 0xc0, 0x40]);

/// A frame of `info`'s format, size and colorimetry, every pixel `rgb`,
/// converted by GStreamer's video converter without dithering.
fn colour_frame(info: &gst_video::VideoInfo, rgb: [u8; 3]) -> Unpacked {
    let rgb_info =
        gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, info.width(), info.height())
            .fps(info.fps())
            .build()
            .unwrap();
    let mut input = gst::Buffer::with_size(rgb_info.size()).unwrap();
    {
        let mut frame =
            gst_video::VideoFrameRef::from_buffer_ref_writable(input.get_mut().unwrap(), &rgb_info)
                .unwrap();
        let stride = frame.plane_stride()[0] as usize;
        for row in frame.plane_data_mut(0).unwrap().chunks_mut(stride) {
            for (i, byte) in row.iter_mut().enumerate() {
                *byte = rgb[i % 3];
            }
        }
    }
    let mut options = gst_video::VideoConverterConfig::new();
    options.set_dither_method(gst_video::VideoDitherMethod::None);
    let converter = gst_video::VideoConverter::new(&rgb_info, info, Some(options)).unwrap();
    let input = gst_video::VideoFrame::from_buffer_readable(input, &rgb_info).unwrap();
    let mut output = gst_video::VideoFrame::from_buffer_writable(
        gst::Buffer::with_size(info.size()).unwrap(),
        info,
    )
    .unwrap();
    converter.frame(&input, &mut output);
    Unpacked::of(info, output.buffer())
}

/// One run of `format` at `size` and `aspect` with `properties`: every frame
/// out with the input's timing and format and the source at one place, sample
/// for sample. Returns the run, the source's place, and the unpacked frames.
fn checked_run(
    format: &str,
    (size, aspect): ((u32, u32), &str),
    properties: &[(&str, &str)],
    frames: u64,
) -> (StreamRun, (u32, u32), Vec<Unpacked>) {
    let mut properties = properties.to_vec();
    properties.push(("aspect", aspect));
    let run = run_stream(&properties, format, size.0, size.1, frames);
    let label = format!("{format} {}x{} to {aspect}", size.0, size.1);
    assert_eq!(run.outputs.len(), run.inputs.len(), "{label}: frames out");
    assert_eq!(
        run.out_info.format(),
        run.in_info.format(),
        "{label}: format"
    );
    for (input, output) in run.inputs.iter().zip(&run.outputs) {
        assert_eq!(output.pts(), input.pts(), "{label}: PTS");
    }
    let grows_wide = aspect == "16/9";
    let (w, h) = (run.out_info.width(), run.out_info.height());
    assert!(
        if grows_wide { w > size.0 } else { h > size.1 },
        "{label}: output {w}x{h}"
    );
    let outputs: Vec<Unpacked> = run
        .outputs
        .iter()
        .map(|b| Unpacked::of(&run.out_info, b))
        .collect();
    let sources: Vec<Unpacked> = run
        .inputs
        .iter()
        .map(|b| Unpacked::of(&run.in_info, b))
        .collect();
    let at = outputs[0].find(&sources[0]).unwrap_or_else(|| {
        panic!("{label}: the source is not in the first frame sample for sample")
    });
    for (k, (output, source)) in outputs.iter().zip(&sources).enumerate() {
        assert!(
            output.holds(source, at),
            "{label}: source samples of frame {k} changed"
        );
    }
    if grows_wide {
        assert!(at.0 > 0, "{label}: the source at the left edge");
    }
    (run, at, outputs)
}

/// The largest difference in codes at the format's depth between two pixels.
fn code_difference(a: [u32; 4], b: [u32; 4], max: u32, depth: u32) -> u32 {
    let drop = if max > 255 { 16 - depth } else { 0 };
    (0..4)
        .map(|c| (a[c] >> drop).abs_diff(b[c] >> drop))
        .max()
        .unwrap()
}

/// The three fills of one format: colour (the new area is the colour in the
/// output's format, to the dithering step of its depth), blur (the source's
/// tones at the output's depth, not flat) and outpaint (something else than
/// both, from the model, every frame generated).
fn check_fills(format: &str) {
    init();
    for shape in SHAPES {
        let color = [
            ("fill-mode", "color"),
            ("fill-color", FILL.0),
            ("feather", "0"),
        ];
        let (run, at, outputs) = checked_run(format, shape, &color, 3);
        let size = (run.in_info.width(), run.in_info.height());
        let reference = colour_frame(&run.out_info, FILL.1);
        let depth = run.out_info.format_info().depth()[0];
        // Two pixels off the source, where no chroma sample is shared with it.
        let new_area = outputs[1].outside(at, size, 2);
        let expected = reference.outside(at, size, 2);
        assert!(!new_area.is_empty());
        for (got, wanted) in new_area.iter().zip(&expected) {
            let step = code_difference(*got, *wanted, reference.max, depth);
            assert!(
                step <= 1,
                "{format} {shape:?}: colour {got:?} for {wanted:?}"
            );
        }

        let (run, at, outputs) = checked_run(format, shape, &[("fill-mode", "blur")], 3);
        let blurred = outputs[2].outside(at, size, 2);
        let source_mean = outputs[2].mean_in(at, size, 1);
        let fill_mean = mean_of(&blurred, 1, outputs[2].max);
        // The blur spreads the source's tones: its mean is the source's, at the output's depth.
        assert!(
            (fill_mean - source_mean).abs() < 0.1,
            "{format} {shape:?}: blur mean {fill_mean:.3}, source {source_mean:.3}"
        );
        let first = blurred[0];
        assert!(
            blurred.iter().any(|p| *p != first),
            "{format} {shape:?}: a flat blur"
        );
        assert_eq!(run.stats.get::<u64>("frames-out").unwrap(), 3);
    }

    check_feather(format);

    let properties = outpaint_properties(16);
    let mut properties = as_refs(&properties);
    properties.retain(|(name, _)| *name != "steps");
    properties.push(("steps", "1"));
    let (run, at, painted) = checked_run(format, SHAPES[1], &properties, 2);
    assert_eq!(run.stats.get::<u64>("frames-generated").unwrap(), 2);
    let size = (run.in_info.width(), run.in_info.height());
    let color = [
        ("fill-mode", "color"),
        ("fill-color", FILL.0),
        ("feather", "0"),
    ];
    let (_, _, flat) = checked_run(format, SHAPES[1], &color, 2);
    let (_, _, blurred) = checked_run(format, SHAPES[1], &[("fill-mode", "blur")], 2);
    let new_area = painted[0].outside(at, size, 2);
    assert_ne!(
        new_area,
        flat[0].outside(at, size, 2),
        "{format}: outpaint gave the colour"
    );
    assert_ne!(
        new_area,
        blurred[0].outside(at, size, 2),
        "{format}: outpaint gave the blur"
    );
}

/// The seam feather at the output's depth: each sample of the band beside the
/// source lies between the source's edge sample and the unfeathered fill
/// (a blend rounded at the sample's own depth), and the band changed.
fn check_feather(format: &str) {
    let (run, at, plain) = checked_run(
        format,
        SHAPES[1],
        &[("fill-mode", "blur"), ("feather", "0")],
        1,
    );
    let (_, _, feathered) = checked_run(
        format,
        SHAPES[1],
        &[("fill-mode", "blur"), ("feather", "6")],
        1,
    );
    let (plain, feathered) = (&plain[0], &feathered[0]);
    let depth = run.out_info.format_info().depth()[0];
    let code = |v: u32| {
        if plain.max > 255 {
            v >> (16 - depth)
        } else {
            v
        }
    };
    let (x0, x1) = (at.0, at.0 + run.in_info.width());
    let mut changed = 0;
    for y in 0..run.in_info.height() {
        let band = (x0.saturating_sub(6)..x0).chain(x1..(x1 + 6).min(plain.width));
        for x in band {
            let edge = feathered.at(if x < x0 { x0 } else { x1 - 1 }, y);
            let (before, after) = (plain.at(x, y), feathered.at(x, y));
            for c in 0..4 {
                let (lo, hi) = (
                    code(edge[c]).min(code(before[c])),
                    code(edge[c]).max(code(before[c])),
                );
                assert!(
                    (lo..=hi).contains(&code(after[c])),
                    "{format}: ({x}, {y}) component {c}: {} not between {lo} and {hi}",
                    code(after[c])
                );
            }
            changed += usize::from(after != before);
        }
    }
    assert!(changed > 0, "{format}: the feather changed nothing");
}

#[test]
fn test_packed_4_2_2_8_bit() {
    for format in ["UYVY", "YUY2"] {
        check_fills(format);
    }
}

#[test]
fn test_planar_and_semi_planar_4_2_2_8_bit() {
    for format in ["Y42B", "NV16"] {
        check_fills(format);
    }
}

#[test]
fn test_planar_4_4_4_and_planar_rgb_8_bit() {
    for format in ["Y444", "GBR", "GBRA"] {
        check_fills(format);
    }
}

#[test]
fn test_10_bit_4_2_0_4_2_2_4_4_4() {
    for format in ["I420_10LE", "P010_10LE", "I422_10LE", "Y444_10LE"] {
        check_fills(format);
    }
}

#[test]
fn test_12_bit_4_2_0_4_2_2_4_4_4() {
    for format in ["I420_12LE", "P012_LE", "I422_12LE", "Y444_12LE"] {
        check_fills(format);
    }
}

#[test]
fn test_v210() {
    check_fills("v210");
}

#[test]
fn test_existing_formats_keep_their_samples_too() {
    for format in ["RGB", "BGRx", "I420", "NV12"] {
        check_fills(format);
    }
}

#[test]
fn test_10_bit_samples_keep_their_low_bits() {
    // Sample values that 8 bits cannot hold (odd, above 255) reach the output unchanged.
    init();
    let (run, at, outputs) = checked_run("I422_10LE", SHAPES[2], &[("fill-mode", "blur")], 1);
    let source = Unpacked::of(&run.in_info, &run.inputs[0]);
    let deep = (0..source.height)
        .flat_map(|y| (0..source.width).map(move |x| (x, y)))
        .filter(|&(x, y)| !(source.at(x, y)[1] >> 6).is_multiple_of(4))
        .count();
    assert!(
        deep > 100,
        "the test frame has only {deep} samples beyond 8 bits"
    );
    assert!(outputs[0].holds(&source, at));
}

#[test]
fn test_a_size_fixed_downstream_scales_the_source_in_its_format() {
    init();
    for format in ["YUY2", "v210", "P010_10LE", "Y444_12LE"] {
        let mut h = harness(&[("fill-mode", "blur")]);
        h.set_sink_caps_str(&format!(
            "video/x-raw,format={format},width=90,height=160,framerate=30/1"
        ));
        let info = video_info(format, 320, 180);
        h.play();
        h.set_src_caps(info.to_caps().unwrap());
        let input = make_frame(&info, 0, 0);
        h.push(input.clone()).unwrap();
        let output = pull_within(&mut h, std::time::Duration::from_secs(30)).unwrap();
        let caps = h.sinkpad().unwrap().current_caps().unwrap();
        let out_info = gst_video::VideoInfo::from_caps(&caps).unwrap();
        assert_eq!(
            (out_info.format(), out_info.width(), out_info.height()),
            (info.format(), 90, 160)
        );
        // The source, scaled into the middle band (rows 55 to 104), keeps its tones.
        let (source, out) = (
            Unpacked::of(&info, &input),
            Unpacked::of(&out_info, &output),
        );
        let source_mean = source.mean_in((0, 0), (320, 180), 1);
        let band_mean = out.mean_in((0, 60), (90, 40), 1);
        assert!(
            (band_mean - source_mean).abs() < 0.05,
            "{format}: band {band_mean:.3}, source {source_mean:.3}"
        );
    }
}

#[test]
fn test_hdr_input_is_told_that_the_canvas_is_sdr() {
    init();
    for (colorimetry, transfer) in [("bt2100-pq", "PQ"), ("bt2100-hlg", "HLG")] {
        let mut h = harness(&[("fill-mode", "blur")]);
        let bus = gst::Bus::new();
        h.element().unwrap().set_bus(Some(&bus));
        h.play();
        let caps = format!(
            "video/x-raw,format=P010_10LE,width=64,height=36,framerate=30/1,colorimetry={colorimetry}"
        );
        h.set_src_caps_str(&caps);
        let info = gst_video::VideoInfo::from_caps(&caps.parse::<gst::Caps>().unwrap()).unwrap();
        for i in 0..3 {
            h.push(make_frame(&info, i, 0)).unwrap();
            h.pull().unwrap();
        }
        let warnings: Vec<String> =
            std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Warning]))
                .map(|msg| match msg.view() {
                    gst::MessageView::Warning(w) => w.error().to_string(),
                    _ => unreachable!(),
                })
                .collect();
        assert_eq!(warnings.len(), 1, "{colorimetry}: {warnings:?}");
        assert!(
            warnings[0].contains(transfer) && warnings[0].contains("SDR"),
            "{warnings:?}"
        );
    }
    // SDR input: no warning.
    let mut h = harness(&[("fill-mode", "blur")]);
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    h.play();
    h.set_src_caps_str(
        "video/x-raw,format=P010_10LE,width=64,height=36,framerate=30/1,colorimetry=bt2020",
    );
    let info = video_info("P010_10LE", 64, 36);
    h.push(make_frame(&info, 0, 0)).unwrap();
    h.pull().unwrap();
    assert!(bus.pop_filtered(&[gst::MessageType::Warning]).is_none());
}
