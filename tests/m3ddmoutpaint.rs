// SPDX-License-Identifier: MPL-2.0
//! Harness tests of the `m3ddmoutpaint` element without a model: properties,
//! caps, the blur and color fills, event order, flush, EOS, caps changes,
//! latency, state cycles and every error the element reports. Outpainting with
//! the tiny model is in `m3ddmoutpaint_outpaint.rs`.

mod common;

use std::time::Duration;

use common::*;
use gst::prelude::*;

// ---------------------------------------------------------------- properties

#[test]
fn test_property_defaults() {
    init();
    let element = gst::ElementFactory::make("m3ddmoutpaint").build().unwrap();
    assert_eq!(
        element.property::<gst::Fraction>("aspect"),
        gst::Fraction::new(9, 16)
    );
    assert_eq!(
        element.property_value("fill-mode").serialize().unwrap(),
        "outpaint"
    );
    assert_eq!(element.property::<Option<String>>("model-path"), None);
    assert_eq!(
        element
            .property_value("execution-provider")
            .serialize()
            .unwrap(),
        "auto"
    );
    assert_eq!(
        element.property::<Option<String>>("device-id").as_deref(),
        Some("0")
    );
    assert_eq!(element.property::<u32>("steps"), 50);
    assert_eq!(
        element.property_value("scheduler").serialize().unwrap(),
        "pndm"
    );
    assert_eq!(element.property::<f64>("guidance-scale"), 2.0);
    assert_eq!(element.property::<f64>("global-guidance-scale"), 4.0);
    assert_eq!(element.property::<u32>("lookahead"), 226);
    assert_eq!(element.property::<u64>("seed"), 0);
    assert_eq!(element.property::<Option<String>>("inference-server"), None);
    assert_eq!(element.property::<u32>("inference-timeout"), 60_000);
    assert_eq!(element.property::<u32>("stall-timeout"), 3000);
}

#[test]
fn test_properties_round_trip() {
    init();
    let element = gst::ElementFactory::make("m3ddmoutpaint").build().unwrap();
    let values = [
        ("aspect", "1/1"),
        ("fill-mode", "blur"),
        ("model-path", "/some/model"),
        ("execution-provider", "cuda"),
        ("device-id", "3,1"),
        ("steps", "7"),
        ("scheduler", "dpmsolver++"),
        ("guidance-scale", "1.5"),
        ("global-guidance-scale", "0.5"),
        ("lookahead", "64"),
        ("seed", "1234"),
        ("fill-color", "65280"),
        ("feather", "4"),
        ("n-threads", "2"),
        ("inference-server", "grpc://gpu1:8001,grpc://gpu2:8001"),
        ("inference-timeout", "2500"),
        ("stall-timeout", "0"),
    ];
    for (name, value) in values {
        element.set_property_from_str(name, value);
        let back = element.property_value(name);
        let expected = glib_value_from_str(&element, name, value);
        assert_eq!(
            back.serialize().unwrap(),
            expected.serialize().unwrap(),
            "property {name}"
        );
    }
}

fn glib_value_from_str(element: &gst::Element, name: &str, value: &str) -> gst::glib::Value {
    let pspec = element.find_property(name).unwrap();
    gst::glib::Value::deserialize(value, pspec.value_type()).unwrap()
}

#[test]
fn test_every_property_is_documented() {
    init();
    let element = gst::ElementFactory::make("m3ddmoutpaint").build().unwrap();
    for name in [
        "aspect",
        "fill-mode",
        "model-path",
        "execution-provider",
        "device-id",
        "steps",
        "scheduler",
        "guidance-scale",
        "global-guidance-scale",
        "lookahead",
        "seed",
        "stats",
        "fill-color",
        "feather",
        "n-threads",
        "inference-server",
        "inference-timeout",
        "inference-tls-ca",
        "inference-tls-cert",
        "inference-tls-key",
        "inference-headers-file",
        "inference-headers-env",
        "stall-timeout",
    ] {
        let pspec = element
            .find_property(name)
            .unwrap_or_else(|| panic!("property {name}"));
        assert!(
            pspec.blurb().is_some_and(|b| b.len() > 10),
            "blurb of {name}"
        );
    }
}

#[test]
fn test_stats_counts_frames() {
    let mut h = harness(&[("fill-mode", "blur")]);
    let info = video_info("RGB", 64, 36);
    h.play();
    h.set_src_caps(info.to_caps().unwrap());
    for i in 0..5 {
        h.push(make_frame(&info, i, 0)).unwrap();
    }
    h.push_event(gst::event::Eos::new());
    for _ in 0..5 {
        pull_within(&mut h, Duration::from_secs(30)).unwrap();
    }
    events_until_eos(&mut h, Duration::from_secs(30));
    let stats = h.element().unwrap().property::<gst::Structure>("stats");
    assert_eq!(stats.get::<u64>("frames-in").unwrap(), 5);
    assert_eq!(stats.get::<u64>("frames-out").unwrap(), 5);
    assert_eq!(stats.get::<u64>("frames-queued").unwrap(), 0);
    assert_eq!(stats.get::<u64>("chunks-run").unwrap(), 0);
    assert_eq!(stats.get::<&str>("provider").unwrap(), "none");
    assert!(stats.has_field("mean-chunk-time"));
}

// ---------------------------------------------------------------- caps

#[test]
fn test_caps_query_keeps_format_and_frees_size() {
    let mut h = harness(&[("fill-mode", "blur")]);
    h.set_sink_caps_str("video/x-raw,format=NV12,width=64,height=114,framerate=30/1");
    let sinkpad = h.element().unwrap().static_pad("sink").unwrap();
    let caps = sinkpad.query_caps(None);
    assert!(!caps.is_empty());
    for s in caps.iter() {
        assert_eq!(s.get::<&str>("format").unwrap(), "NV12", "{caps}");
        assert_eq!(
            s.get::<gst::Fraction>("framerate").unwrap(),
            gst::Fraction::new(30, 1)
        );
    }
    assert!(
        sinkpad.query_accept_caps(
            &"video/x-raw,format=NV12,width=64,height=36,framerate=30/1"
                .parse()
                .unwrap()
        )
    );
}

#[test]
fn test_src_caps_follow_upstream() {
    let mut h = harness(&[("fill-mode", "blur")]);
    h.play();
    h.set_src_caps_str("video/x-raw,format=RGB,width=64,height=36,framerate=30/1");
    h.push(make_frame(&video_info("RGB", 64, 36), 0, 0))
        .unwrap();
    pull_within(&mut h, Duration::from_secs(30)).unwrap();
    let srcpad = h.element().unwrap().static_pad("src").unwrap();
    let caps = srcpad.query_caps(None);
    assert!(caps.is_fixed(), "{caps}");
    let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
    assert_eq!(
        (info.width(), info.format()),
        (64, gst_video::VideoFormat::Rgb)
    );
}

#[test]
fn test_square_source_to_wide_grows_the_width() {
    let run = run_stream(
        &[("fill-mode", "blur"), ("aspect", "16/9")],
        "RGB",
        36,
        36,
        3,
    );
    assert_eq!(run.out_info.height(), 36);
    check_stream(&run, (16, 9));
}

#[test]
fn test_pixel_aspect_ratio_is_taken_into_account() {
    init();
    let mut h = harness(&[("fill-mode", "color"), ("aspect", "1/1")]);
    // 40x36 pixels of 2:1 are 80x36 on screen: a 1:1 display needs 80x80 on screen = 40x80 pixels.
    let caps: gst::Caps =
        "video/x-raw,format=RGB,width=40,height=36,framerate=30/1,pixel-aspect-ratio=2/1"
            .parse()
            .unwrap();
    h.play();
    h.set_src_caps(caps.clone());
    let in_info = gst_video::VideoInfo::from_caps(&caps).unwrap();
    let input = make_frame(&in_info, 0, 0);
    h.push(input.clone()).unwrap();
    let output = pull_within(&mut h, Duration::from_secs(30)).unwrap();
    let out_info =
        gst_video::VideoInfo::from_caps(&h.sinkpad().unwrap().current_caps().unwrap()).unwrap();
    assert_eq!(out_info.par(), gst::Fraction::new(2, 1));
    assert_eq!((out_info.width(), out_info.height()), (40, 80));
    let at = locate_source(&in_info, &input, &out_info, &output).expect("source in the output");
    assert!(source_is_exact(&in_info, &input, &out_info, &output, at));
}

// ---------------------------------------------------------------- flat fills

#[test]
fn test_blur_rgb() {
    let run = run_stream(&[("fill-mode", "blur")], "RGB", 64, 36, 20);
    check_stream(&run, (9, 16));
}

#[test]
fn test_blur_formats() {
    for format in ["RGBA", "BGRA", "BGRx", "I420", "NV12"] {
        let run = run_stream(&[("fill-mode", "blur")], format, 64, 36, 4);
        check_stream(&run, (9, 16));
        if matches!(format, "I420" | "NV12") {
            let (width, height) = (run.out_info.width(), run.out_info.height());
            assert!(
                width.is_multiple_of(2) && height.is_multiple_of(2),
                "{format} output size even"
            );
        }
    }
}

#[test]
fn test_odd_sizes_in_subsampled_formats() {
    for format in ["I420", "NV12"] {
        let run = run_stream(&[("fill-mode", "blur")], format, 63, 35, 3);
        assert!(run.out_info.width().is_multiple_of(2) && run.out_info.height().is_multiple_of(2));
        check_stream(&run, (9, 16));
    }
}

#[test]
fn test_blur_fills_with_the_source_not_black() {
    let run = run_stream(&[("fill-mode", "blur"), ("feather", "0")], "RGB", 64, 36, 1);
    let out =
        gst_video::VideoFrameRef::from_buffer_ref_readable(run.outputs[0].as_ref(), &run.out_info)
            .unwrap();
    let top_row = &out.plane_data(0).unwrap()[..64 * 3];
    assert!(top_row.iter().any(|&b| b > 20), "the blurred area is black");
}

#[test]
fn test_color_fill_is_the_colour() {
    let run = run_stream(
        &[
            ("fill-mode", "color"),
            ("fill-color", "0xff20c040"),
            ("feather", "0"),
        ],
        "RGB",
        64,
        36,
        2,
    );
    check_stream(&run, (9, 16));
    let out =
        gst_video::VideoFrameRef::from_buffer_ref_readable(run.outputs[1].as_ref(), &run.out_info)
            .unwrap();
    let first_rows = &out.plane_data(0).unwrap()[..64 * 3 * 4];
    for pixel in first_rows.chunks(3) {
        assert_eq!(pixel, [0x20, 0xc0, 0x40]);
    }
}

#[test]
fn test_flat_modes_have_no_latency() {
    let mut h = harness(&[("fill-mode", "blur")]);
    h.play();
    h.set_src_caps_str("video/x-raw,format=RGB,width=64,height=36,framerate=30/1");
    h.set_upstream_latency(gst::ClockTime::from_mseconds(10));
    assert_eq!(h.query_latency(), Some(gst::ClockTime::from_mseconds(10)));
}

#[test]
fn test_setting_lookahead_posts_a_latency_message() {
    init();
    let element = gst::ElementFactory::make("m3ddmoutpaint").build().unwrap();
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    element.set_property("lookahead", 32u32);
    assert!(bus.pop_filtered(&[gst::MessageType::Latency]).is_some());
}

// ---------------------------------------------------------------- events

fn flat_stream_with_events(
    fill: &str,
    build: impl FnOnce(&mut gst_check::Harness, &gst_video::VideoInfo),
) -> Vec<String> {
    let mut h = harness(&[("fill-mode", fill)]);
    let log = record_src(&h);
    h.play();
    let info = video_info("RGB", 64, 36);
    h.set_src_caps(info.to_caps().unwrap());
    build(&mut h, &info);
    assert!(h.push_event(gst::event::Eos::new()));
    events_until_eos(&mut h, Duration::from_secs(60));
    log.lock().unwrap().clone()
}

#[test]
fn test_serialized_events_keep_their_place() {
    let log = flat_stream_with_events("blur", |h, info| {
        for i in 0..3 {
            h.push(make_frame(info, i, 0)).unwrap();
        }
        let custom = gst::event::CustomDownstream::new(gst::Structure::new_empty("marker"));
        assert!(h.push_event(custom));
        for i in 3..5 {
            h.push(make_frame(info, i, 0)).unwrap();
        }
    });
    let marker = log
        .iter()
        .position(|e| e.contains("CustomDownstream"))
        .expect("marker forwarded");
    assert_eq!(log[marker - 1], "buffer 2", "{log:?}");
    assert_eq!(log[marker + 1], "buffer 3", "{log:?}");
    assert_eq!(log.last().unwrap(), "event Eos");
}

#[test]
fn test_flush_in_flat_mode_restarts_cleanly() {
    let mut h = harness(&[("fill-mode", "blur")]);
    h.play();
    let info = video_info("RGB", 64, 36);
    h.set_src_caps(info.to_caps().unwrap());
    for i in 0..4 {
        h.push(make_frame(&info, i, 0)).unwrap();
    }
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    while h.try_pull().is_some() {}
    let segment = gst::FormattedSegment::<gst::ClockTime>::new();
    assert!(h.push_event(gst::event::Segment::new(&segment)));
    let offset = 100 * FRAME_NS;
    for i in 0..6 {
        assert_eq!(
            h.push(make_frame(&info, i, offset)),
            Ok(gst::FlowSuccess::Ok)
        );
    }
    assert!(h.push_event(gst::event::Eos::new()));
    for i in 0..6 {
        let out = pull_within(&mut h, Duration::from_secs(30)).expect("a frame after the flush");
        assert_eq!(
            out.pts(),
            Some(gst::ClockTime::from_nseconds(offset + i * FRAME_NS))
        );
    }
    let events = events_until_eos(&mut h, Duration::from_secs(30));
    assert!(
        events
            .iter()
            .any(|e| e.type_() == gst::EventType::FlushStop)
    );
    assert!(h.try_pull().is_none());
    // The task restarted by the flush lets go of the element too.
    let weak = h.element().unwrap().downgrade();
    drop(h);
    assert!(released(&weak), "the element outlived its harness");
}

#[test]
fn test_eos_without_frames() {
    let mut h = harness(&[("fill-mode", "blur")]);
    h.play();
    h.set_src_caps_str("video/x-raw,format=RGB,width=64,height=36,framerate=30/1");
    assert!(h.push_event(gst::event::Eos::new()));
    events_until_eos(&mut h, Duration::from_secs(30));
    assert!(h.try_pull().is_none());
}

#[test]
fn test_caps_change_in_flat_mode() {
    let mut h = harness(&[("fill-mode", "color")]);
    h.play();
    let first = video_info("RGB", 64, 36);
    let second = video_info("RGB", 48, 48);
    h.set_src_caps(first.to_caps().unwrap());
    h.push(make_frame(&first, 0, 0)).unwrap();
    assert!(h.push_event(gst::event::Caps::new(&second.to_caps().unwrap())));
    h.push(make_frame(&second, 1, 0)).unwrap();
    h.push_event(gst::event::Eos::new());
    let a = pull_within(&mut h, Duration::from_secs(30)).unwrap();
    let b = pull_within(&mut h, Duration::from_secs(30)).unwrap();
    // 64x36 at 9:16 is 64 wide, 48x48 is 48 wide: the sizes of their frames tell which caps they had.
    assert!(a.size() > b.size());
    let out_info =
        gst_video::VideoInfo::from_caps(&h.sinkpad().unwrap().current_caps().unwrap()).unwrap();
    assert_eq!(out_info.width(), 48);
}

// ---------------------------------------------------------------- state and errors

#[test]
fn test_outpaint_without_model_path_is_an_error() {
    let err = ready_error(&[]);
    assert!(err.message().contains("model-path"), "{err}");
}

#[test]
fn test_missing_model_directory_is_an_error() {
    let err = ready_error(&[("model-path", "/nonexistent/m3ddm-model")]);
    assert!(err.message().contains("/nonexistent/m3ddm-model"), "{err}");
    assert!(err.matches(gst::ResourceError::NotFound), "{err}");
}

#[test]
fn test_wrong_model_directory_is_an_error() {
    let dir = std::env::temp_dir().join(format!("m3ddm-empty-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = ready_error(&[("model-path", dir.to_str().unwrap())]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(err.message().contains("manifest"), "{err}");
}

#[test]
fn test_cuda_without_gpu_is_an_error() {
    if std::path::Path::new("/dev/nvidia0").exists() {
        eprintln!("skipped: this machine has an NVIDIA GPU");
        return;
    }
    let model = tiny_model();
    let err = ready_error(&[
        ("model-path", model.to_str().unwrap()),
        ("execution-provider", "cuda"),
    ]);
    assert!(err.message().to_lowercase().contains("cuda"), "{err}");
}

#[test]
fn test_aspect_and_expand_together_are_an_error_naming_both() {
    let err = ready_error(&[("fill-mode", "blur"), ("aspect", "1/1"), ("expand", "0.25")]);
    assert!(
        err.message().contains("aspect") && err.message().contains("expand"),
        "{err}"
    );
}

#[test]
fn test_bad_device_lists_are_errors_naming_the_entry() {
    for (devices, named) in [
        ("0,x", "`x`"),
        ("0,0", "twice"),
        ("300", "`300`"),
        ("", "``"),
    ] {
        let err = ready_error(&[("fill-mode", "blur"), ("device-id", devices)]);
        assert!(
            err.message().contains("device-id") && err.message().contains(named),
            "{devices}: {err}"
        );
    }
}

#[test]
fn test_unhandled_format_is_an_error() {
    let err = caps_error(
        &[("fill-mode", "blur")],
        "video/x-raw,format=GRAY8,width=64,height=36,framerate=30/1",
    );
    assert!(err.message().contains("GRAY8"), "{err}");
}

#[test]
fn test_too_small_frame_is_an_error() {
    let err = caps_error(
        &[("fill-mode", "blur")],
        "video/x-raw,format=RGB,width=1,height=1,framerate=30/1",
    );
    assert!(
        err.message().contains("1x1") && err.message().contains("2x2"),
        "{err}"
    );
}

#[test]
fn test_buffer_before_caps_is_not_negotiated() {
    let mut h = harness(&[("fill-mode", "blur")]);
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    h.play();
    assert!(
        h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
            gst::ClockTime,
        >::new()))
    );
    let buffer = make_frame(&video_info("RGB", 64, 36), 0, 0);
    assert_eq!(h.push(buffer), Err(gst::FlowError::NotNegotiated));
    assert!(bus.pop_filtered(&[gst::MessageType::Error]).is_some());
}

#[test]
fn test_state_cycles_on_one_element() {
    let mut h = harness(&[("fill-mode", "blur")]);
    let element = h.element().unwrap();
    let info = video_info("RGB", 64, 36);
    for cycle in 0..20 {
        h.play();
        assert!(h.push_event(gst::event::StreamStart::new(&format!("cycle-{cycle}"))));
        assert!(h.push_event(gst::event::Caps::new(&info.to_caps().unwrap())));
        assert!(
            h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
                gst::ClockTime,
            >::new()))
        );
        h.push(make_frame(&info, 0, 0)).unwrap();
        pull_within(&mut h, Duration::from_secs(30)).expect("a frame in every cycle");
        element.set_state(gst::State::Null).unwrap();
    }
}
