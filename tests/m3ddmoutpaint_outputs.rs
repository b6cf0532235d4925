// SPDX-License-Identifier: MPL-2.0
//! The element's outputs: several sizes from one generation (request pads
//! `src_%u`), a pad released mid-stream, expansion on every side, an output
//! size fixed downstream, scene cuts and progress messages.

mod common;

use common::outputs::{OutputsSetup, run_outputs};
use common::*;
use gst::prelude::*;

fn tiny_outpaint() -> Vec<(&'static str, String)> {
    let mut properties = outpaint_properties(20);
    properties.push(("steps", "1".to_string()));
    properties.push(("seed", "3".to_string()));
    properties
}

fn frames(info: &gst_video::VideoInfo, count: u64) -> Vec<gst::Buffer> {
    (0..count).map(|i| make_frame(info, i, 0)).collect()
}

fn bytes(buffer: &gst::Buffer) -> Vec<u8> {
    buffer.map_readable().unwrap().as_slice().to_vec()
}

#[test]
fn test_two_and_three_outputs_come_from_one_generation() {
    init();
    let info = video_info("RGB", 64, 36);
    let input = frames(&info, 20);
    let properties = tiny_outpaint();
    let properties = as_refs(&properties);
    for requests in [&["1/1"][..], &["1/1", "16/9"][..]] {
        let pads: Vec<String> = std::iter::once("src".to_string())
            .chain((0..requests.len()).map(|k| format!("src_{k}")))
            .collect();
        let all: Vec<&str> = pads.iter().map(String::as_str).collect();
        let together = run_outputs(
            &OutputsSetup {
                properties: &properties,
                requests,
                linked: &all,
                release: None,
                with_duration: false,
            },
            &info,
            &input,
        );
        let windows = together.stats.get::<u64>("windows-run").unwrap();
        for pad in &all {
            // Every frame on every pad, in order, with the input's timestamps.
            let out = &together.buffers[*pad];
            assert_eq!(out.len(), input.len(), "{pad}");
            for (o, i) in out.iter().zip(&input) {
                assert_eq!((o.pts(), o.duration()), (i.pts(), i.duration()), "{pad}");
            }
            // The same output alone (the other pads unlinked, the canvas the same):
            // the same bytes, from as many windows.
            let alone = run_outputs(
                &OutputsSetup {
                    properties: &properties,
                    requests,
                    linked: &[pad],
                    release: None,
                    with_duration: false,
                },
                &info,
                &input,
            );
            assert_eq!(alone.stats.get::<u64>("windows-run").unwrap(), windows);
            for (k, (a, b)) in out.iter().zip(&alone.buffers[*pad]).enumerate() {
                assert!(bytes(a) == bytes(b), "{pad} frame {k} differs");
            }
            // Each pad has its own ratio, and the source is in it, bit-exact.
            let out_info = gst_video::VideoInfo::from_caps(&together.caps[*pad]).unwrap();
            let at = locate_source(&info, &input[0], &out_info, &out[0])
                .unwrap_or_else(|| panic!("{pad}: the source is not in the output"));
            assert!(source_is_exact(&info, &input[5], &out_info, &out[5], at));
        }
        let sizes: Vec<(u32, u32)> = all
            .iter()
            .map(|pad| {
                let s = together.caps[*pad].structure(0).unwrap();
                (
                    s.get::<i32>("width").unwrap() as u32,
                    s.get::<i32>("height").unwrap() as u32,
                )
            })
            .collect();
        assert_eq!(sizes[0], (64, 114));
        assert_eq!(sizes[1], (64, 64));
        if let Some(&wide) = sizes.get(2) {
            assert_eq!(wide, (64, 36));
        }
    }
}

#[test]
fn test_a_pad_released_mid_stream_leaves_the_others_running() {
    init();
    let info = video_info("RGB", 64, 36);
    let input = frames(&info, 40);
    let run = run_outputs(
        &OutputsSetup {
            properties: &[("fill-mode", "blur")],
            requests: &["1/1"],
            linked: &["src", "src_0"],
            release: Some(("src_0", 10)),
            with_duration: false,
        },
        &info,
        &input,
    );
    let kept = &run.buffers["src"];
    assert_eq!(kept.len(), input.len());
    for (o, i) in kept.iter().zip(&input) {
        assert_eq!(o.pts(), i.pts());
    }
    let released = run.buffers["src_0"].len();
    assert!(
        (10..input.len()).contains(&released),
        "{released} frames on src_0"
    );
}

#[test]
fn test_the_gst_launch_syntax_sets_a_request_pad_aspect() {
    init();
    let (pipeline, sink) = pipeline_with_appsink(
        "videotestsrc num-buffers=3 ! video/x-raw,format=RGB,width=64,height=36 \
         ! m3ddmoutpaint name=o fill-mode=blur src_0::aspect=1/1 \
         o.src ! queue ! fakesink o.src_0 ! queue ! appsink name=square sync=false",
        "square",
    );
    pipeline.set_state(gst::State::Playing).unwrap();
    let sample = sink.pull_sample().expect("a frame on src_0");
    let s = sample.caps().unwrap().structure(0).unwrap().to_owned();
    assert_eq!(
        (
            s.get::<i32>("width").unwrap(),
            s.get::<i32>("height").unwrap()
        ),
        (64, 64)
    );
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn test_expand_grows_the_chosen_sides() {
    // (expand, output size of a 100×50 source in RGB, in I420 with even offsets and sizes)
    for (expand, rgb, i420) in [
        ("0,0.5,0,0", (150, 50), (150, 50)), // one side: the right
        ("0.2,0", (100, 70), (100, 70)),     // two sides: top and bottom
        ("<0.25, 0.25, 0.25, 0.25>", (150, 76), (152, 78)), // all around
    ] {
        for (format, size) in [("RGB", rgb), ("I420", i420)] {
            let run = run_stream(
                &[("fill-mode", "blur"), ("expand", expand)],
                format,
                100,
                50,
                3,
            );
            let out = (run.out_info.width(), run.out_info.height());
            assert_eq!(out, size, "{expand} in {format}");
            for (input, output) in run.inputs.iter().zip(&run.outputs) {
                let at = locate_source(&run.in_info, input, &run.out_info, output)
                    .unwrap_or_else(|| panic!("{expand}: the source is not in the output"));
                assert!(source_is_exact(
                    &run.in_info,
                    input,
                    &run.out_info,
                    output,
                    at
                ));
            }
        }
    }
}

#[test]
fn test_a_size_fixed_downstream_composes_at_that_size() {
    let mut h = harness(&[("fill-mode", "blur")]);
    h.set_sink_caps_str("video/x-raw,format=I420,width=90,height=160,framerate=30/1");
    let info = video_info("I420", 320, 180);
    h.play();
    h.set_src_caps(info.to_caps().unwrap());
    for i in 0..3 {
        h.push(make_frame(&info, i, 0)).unwrap();
    }
    h.push_event(gst::event::Eos::new());
    let outputs: Vec<gst::Buffer> = (0..3)
        .map(|_| pull_within(&mut h, std::time::Duration::from_secs(30)).unwrap())
        .collect();
    // The element's task sends its caps before its first buffer, not before
    // the push above returns: read them once a buffer has come.
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    let out = gst_video::VideoInfo::from_caps(&caps).unwrap();
    assert_eq!((out.width(), out.height()), (90, 160));
    for buffer in &outputs {
        assert_eq!(buffer.size(), out.size());
    }
}

/// An RGB frame of one of two shots: a flat colour with a bar moving right.
fn shot_frame(info: &gst_video::VideoInfo, index: u64, second_shot: bool) -> gst::Buffer {
    let (w, h) = (info.width() as u64, info.height() as u64);
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for _y in 0..h {
        for x in 0..w {
            let bar = (x + w - (index * 2) % w) % w < 4;
            let base: [u8; 3] = if second_shot {
                [20, 30, 200]
            } else {
                [210, 180, 40]
            };
            data.extend_from_slice(&if bar { [255, 255, 255] } else { base });
        }
    }
    let mut buffer = gst::Buffer::from_mut_slice(data);
    let b = buffer.get_mut().unwrap();
    b.set_pts(gst::ClockTime::from_nseconds(index * FRAME_NS));
    b.set_duration(gst::ClockTime::from_nseconds(FRAME_NS));
    buffer
}

#[test]
fn test_a_scene_cut_is_counted_and_posted_with_its_pts() {
    init();
    let info = video_info("RGB", 64, 36);
    let input: Vec<gst::Buffer> = (0..30).map(|i| shot_frame(&info, i, i >= 18)).collect();
    let mut properties = tiny_outpaint();
    properties.push(("scene-threshold", "0.2".to_string()));
    let run = run_outputs(
        &OutputsSetup {
            properties: &as_refs(&properties),
            requests: &[],
            linked: &["src"],
            release: None,
            with_duration: false,
        },
        &info,
        &input,
    );
    assert_eq!(run.buffers["src"].len(), input.len());
    assert_eq!(run.stats.get::<u64>("scene-cuts").unwrap(), 1);
    let cuts: Vec<u64> = run
        .messages
        .iter()
        .filter(|m| m.name() == "m3ddmoutpaint-scene-cut")
        .map(|m| m.get::<u64>("pts").unwrap())
        .collect();
    assert_eq!(cuts, vec![18 * FRAME_NS]);
}

#[test]
fn test_progress_messages_count_up_to_100_percent() {
    init();
    let info = video_info("RGB", 64, 36);
    let input = frames(&info, 40);
    let properties = tiny_outpaint();
    let run = run_outputs(
        &OutputsSetup {
            properties: &as_refs(&properties),
            requests: &[],
            linked: &["src"],
            release: None,
            with_duration: true,
        },
        &info,
        &input,
    );
    let progress: Vec<&gst::Structure> = run
        .messages
        .iter()
        .filter(|m| m.name() == "m3ddmoutpaint-progress")
        .collect();
    assert!(progress.len() >= 2, "{progress:?}");
    let done: Vec<u64> = progress
        .iter()
        .map(|m| m.get::<u64>("frames-done").unwrap())
        .collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
    let last = progress.last().unwrap();
    assert_eq!(last.get::<u64>("frames-total").unwrap(), 40);
    assert_eq!(last.get::<f64>("percent").unwrap(), 100.0);
    assert!(last.get::<u64>("windows-done").unwrap() > 0);
}
