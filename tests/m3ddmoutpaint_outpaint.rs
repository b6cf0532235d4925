// SPDX-License-Identifier: MPL-2.0
//! Harness tests of `m3ddmoutpaint` in outpaint mode with the bundled tiny
//! model (canvas 128) and 2 steps: frame counts around the window (16) and the
//! default lookahead (226), formats, holding back, latency, flush, EOS, caps
//! changes, DRAIN, shutdown during a chunk and state cycles.

mod common;

use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;

fn outpaint_run(frames: u64, lookahead: u32) -> StreamRun {
    let properties = outpaint_properties(lookahead);
    let run = run_stream(&as_refs(&properties), "RGB", 64, 36, frames);
    eprintln!(
        "{frames} frames, lookahead {lookahead}: {:.1} s",
        run.elapsed.as_secs_f64()
    );
    check_stream(&run, (9, 16));
    run
}

/// A playing harness in outpaint mode with `frames` 64×36 RGB frames pushed.
fn harness_with_frames(lookahead: u32, frames: u64) -> (gst_check::Harness, gst_video::VideoInfo) {
    let properties = outpaint_properties(lookahead);
    let mut h = harness(&as_refs(&properties));
    let info = video_info("RGB", 64, 36);
    play_with_frames(&mut h, &info, frames);
    (h, info)
}

/// Sets `h` playing with `info`'s caps and pushes frames 0..`frames`.
fn play_with_frames(h: &mut gst_check::Harness, info: &gst_video::VideoInfo, frames: u64) {
    h.play();
    h.set_src_caps(info.to_caps().unwrap());
    for i in 0..frames {
        h.push(make_frame(info, i, 0)).unwrap();
    }
}

#[test]
fn test_outpaint_1_frame() {
    outpaint_run(1, 226);
}

#[test]
fn test_outpaint_15_frames() {
    outpaint_run(15, 226);
}

#[test]
fn test_outpaint_16_frames() {
    outpaint_run(16, 226);
}

#[test]
fn test_outpaint_17_frames() {
    outpaint_run(17, 226);
}

#[test]
fn test_outpaint_17_frames_over_two_chunks() {
    outpaint_run(17, 16);
}

#[test]
fn test_outpaint_lookahead_shorter_than_a_window() {
    outpaint_run(7, 3);
}

#[test]
fn test_outpaint_50_frames() {
    outpaint_run(50, 226);
}

#[test]
fn test_outpaint_226_frames() {
    outpaint_run(226, 226);
}

#[test]
fn test_outpaint_227_frames() {
    outpaint_run(227, 226);
}

#[test]
fn test_outpaint_500_frames() {
    outpaint_run(500, 226);
}

#[test]
fn test_outpaint_formats() {
    let properties = outpaint_properties(16);
    for format in ["I420", "NV12", "RGBA"] {
        let run = run_stream(&as_refs(&properties), format, 64, 36, 3);
        check_stream(&run, (9, 16));
    }
}

#[test]
fn test_outpaint_generates_the_new_area() {
    // The same frames through color mode and outpaint mode: outpaint writes something else there.
    let properties = outpaint_properties(16);
    let painted = run_stream(&as_refs(&properties), "RGB", 64, 36, 2);
    let flat = run_stream(
        &[("fill-mode", "color"), ("feather", "16")],
        "RGB",
        64,
        36,
        2,
    );
    assert_eq!(painted.out_info.size(), flat.out_info.size());
    let painted = painted.outputs[0].map_readable().unwrap();
    let flat = flat.outputs[0].map_readable().unwrap();
    assert_ne!(painted.as_slice(), flat.as_slice());
}

#[test]
fn test_outpaint_holds_frames_until_the_lookahead_is_full() {
    let (mut h, info) = harness_with_frames(16, 15);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        h.try_pull().is_none(),
        "a frame left before the lookahead was full"
    );
    let stats = h.element().unwrap().property::<gst::Structure>("stats");
    assert_eq!(stats.get::<u64>("frames-queued").unwrap(), 15);
    h.push(make_frame(&info, 15, 0)).unwrap();
    for i in 0..16 {
        let out = pull_within(&mut h, Duration::from_secs(300)).expect("the chunk's frames");
        assert_eq!(out.pts(), Some(gst::ClockTime::from_nseconds(i * FRAME_NS)));
    }
    let stats = h.element().unwrap().property::<gst::Structure>("stats");
    assert_eq!(stats.get::<u64>("chunks-run").unwrap(), 1);
    assert!(stats.get::<u64>("windows-run").unwrap() >= 1);
    assert!(stats.get::<u64>("mean-window-time").unwrap() > 0);
    assert_eq!(stats.get::<u64>("frames-out").unwrap(), 16);
    assert_eq!(stats.get::<&str>("provider").unwrap(), "cpu");
}

#[test]
fn test_outpaint_latency_is_the_lookahead() {
    let properties = outpaint_properties(16);
    let mut h = harness(&as_refs(&properties));
    h.play();
    h.set_src_caps_str("video/x-raw,format=RGB,width=64,height=36,framerate=30/1");
    h.set_upstream_latency(gst::ClockTime::ZERO);
    // 16 frames at 30 fps; no chunk has run yet, so no processing time is known.
    let expected = gst::ClockTime::SECOND.mul_div_floor(16, 30).unwrap();
    assert_eq!(h.query_latency(), Some(expected));
}

#[test]
fn test_outpaint_eos_drains_pending_frames() {
    let properties = outpaint_properties(64);
    let run = run_stream(&as_refs(&properties), "RGB", 64, 36, 5);
    check_stream(&run, (9, 16));
}

#[test]
fn test_outpaint_flush_mid_stream() {
    let properties = outpaint_properties(16);
    let mut h = harness(&as_refs(&properties));
    let info = video_info("RGB", 64, 36);
    h.play();
    h.set_src_caps(info.to_caps().unwrap());
    // 10 frames held (less than the lookahead), then 16 more so that a chunk is running, flushed both times.
    for batch in [10u64, 16] {
        for i in 0..batch {
            h.push(make_frame(&info, i, 0)).unwrap();
        }
        let started = Instant::now();
        assert!(h.push_event(gst::event::FlushStart::new()));
        assert!(h.push_event(gst::event::FlushStop::new(true)));
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the flush waited for the chunk"
        );
        while h.try_pull().is_some() {}
        assert!(
            h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
                gst::ClockTime,
            >::new()))
        );
    }
    let offset = 1000 * FRAME_NS;
    let after: Vec<gst::Buffer> = (0..17).map(|i| make_frame(&info, i, offset)).collect();
    for buffer in &after {
        assert_eq!(h.push(buffer.clone()), Ok(gst::FlowSuccess::Ok));
    }
    assert!(h.push_event(gst::event::Eos::new()));
    for input in &after {
        let out =
            pull_within(&mut h, Duration::from_secs(300)).expect("every frame after the flush");
        assert_eq!(out.pts(), input.pts());
    }
    events_until_eos(&mut h, Duration::from_secs(60));
    assert!(h.try_pull().is_none());
}

#[test]
fn test_outpaint_caps_change_drains_old_frames_first() {
    let properties = outpaint_properties(16);
    let mut h = harness(&as_refs(&properties));
    let log = record_src(&h);
    let first = video_info("RGB", 64, 36);
    let second = video_info("RGB", 48, 48);
    play_with_frames(&mut h, &first, 5);
    assert!(h.push_event(gst::event::Caps::new(&second.to_caps().unwrap())));
    for i in 5..10 {
        h.push(make_frame(&second, i, 0)).unwrap();
    }
    h.push_event(gst::event::Eos::new());
    let outputs: Vec<gst::Buffer> = (0..10)
        .map(|_| pull_within(&mut h, Duration::from_secs(300)).expect("ten frames"))
        .collect();
    events_until_eos(&mut h, Duration::from_secs(60));
    let sizes: Vec<usize> = outputs.iter().map(|b| b.size()).collect();
    assert!(
        sizes[..5].iter().all(|&s| s == sizes[0]) && sizes[5..].iter().all(|&s| s == sizes[5]),
        "{sizes:?}"
    );
    assert_ne!(sizes[0], sizes[5]);
    let log = log.lock().unwrap().clone();
    let caps_events: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, e)| e.contains("Caps"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(caps_events.len(), 2, "{log:?}");
    assert_eq!(log[caps_events[1] - 1], "buffer 4", "{log:?}");
}

#[test]
fn test_outpaint_drain_query_outputs_held_frames() {
    let (h, _info) = harness_with_frames(64, 4);
    let mut drain = gst::query::Drain::new();
    assert!(h.srcpad().unwrap().peer_query(&mut drain));
    assert_eq!(h.buffers_in_queue(), 4);
}

#[test]
fn test_outpaint_shutdown_during_a_chunk() {
    let (h, _info) = harness_with_frames(16, 16);
    let started = Instant::now();
    h.element().unwrap().set_state(gst::State::Null).unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn test_outpaint_state_cycles() {
    init();
    let model = tiny_model();
    let args = format!(
        "model-path={} steps=1 lookahead=16 execution-provider=cpu",
        model.display()
    );
    for cycle in 0..5 {
        let weak = pipeline_cycle(&args, 2);
        assert!(
            released(&weak),
            "cycle {cycle}: the element outlived its pipeline"
        );
    }
}

#[test]
fn test_outpaint_flush_while_draining_for_new_caps() {
    let properties = outpaint_properties(16);
    let mut h = harness(&as_refs(&properties));
    let first = video_info("RGB", 64, 36);
    let second = video_info("RGB", 48, 48);
    play_with_frames(&mut h, &first, 5);
    // The new caps make the task drain the 5 frames; the flush lands during (or before) that drain.
    assert!(h.push_event(gst::event::Caps::new(&second.to_caps().unwrap())));
    std::thread::sleep(Duration::from_millis(200));
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    assert!(
        h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
            gst::ClockTime,
        >::new()))
    );
    while h.try_pull().is_some() {}
    let inputs: Vec<gst::Buffer> = (0..3)
        .map(|i| make_frame(&second, i, 500 * FRAME_NS))
        .collect();
    for buffer in &inputs {
        assert_eq!(h.push(buffer.clone()), Ok(gst::FlowSuccess::Ok));
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let outputs: Vec<gst::Buffer> = (0..3)
        .map(|_| pull_within(&mut h, Duration::from_secs(300)).expect("the frames after the flush"))
        .collect();
    events_until_eos(&mut h, Duration::from_secs(60));
    let out_info =
        gst_video::VideoInfo::from_caps(&h.sinkpad().unwrap().current_caps().unwrap()).unwrap();
    assert_eq!(out_info.width(), 48, "the new caps apply after the flush");
    let at = locate_source(&second, &inputs[0], &out_info, &outputs[0])
        .expect("the source in the output");
    for (input, output) in inputs.iter().zip(&outputs) {
        assert_eq!(output.pts(), input.pts());
        assert!(source_is_exact(&second, input, &out_info, output, at));
    }
}

/// One U-Net call of the tiny model on one guidance item at its canvas, as the
/// element makes it on the CPU (the second fastest of four, the first warming up).
fn one_unet_call() -> Duration {
    use gstm3ddm::engine::{ExecutionProvider, Model, ModelOptions, SessionConfig};
    let model = Model::shared(&ModelOptions {
        model_dir: tiny_model(),
        session: SessionConfig {
            provider: ExecutionProvider::Cpu,
            ..SessionConfig::default()
        },
        remote: Default::default(),
    })
    .unwrap();
    let side = (model.canvas() / 8) as usize;
    let (context, tokens, dim) = model
        .global_context(&vec![0.0; 16 * 4 * side * side], side, side)
        .unwrap();
    let sample = vec![0.1; 9 * 16 * side * side];
    let mut out = Vec::new();
    let mut times: Vec<Duration> = (0..4)
        .map(|_| {
            let started = Instant::now();
            model
                .unet(
                    &sample,
                    1,
                    (side, side),
                    500,
                    30,
                    &context,
                    (tokens, dim),
                    &mut out,
                )
                .unwrap();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[1]
}

/// A playing harness whose first chunk (15 frames, 6 steps, run by the drain
/// of a new SEGMENT; a full chunk would block the pushing thread) is in its
/// denoising loop.
fn harness_during_a_chunk() -> (gst_check::Harness, gst_video::VideoInfo) {
    let mut properties = outpaint_properties(16);
    properties.push(("steps", "6".to_string()));
    let mut h = harness(&as_refs(&properties));
    let info = video_info("RGB", 64, 36);
    play_with_frames(&mut h, &info, 15);
    assert!(
        h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
            gst::ClockTime,
        >::new()))
    );
    std::thread::sleep(Duration::from_millis(1500));
    let stats = h.element().unwrap().property::<gst::Structure>("stats");
    assert_eq!(
        stats.get::<u64>("frames-out").unwrap(),
        0,
        "the chunk ended before the test could interrupt it: {stats}"
    );
    (h, info)
}

#[test]
fn test_outpaint_flush_and_stop_during_a_chunk_wait_one_unet_call_at_most() {
    let call = one_unet_call();
    let (mut h, info) = harness_during_a_chunk();
    let started = Instant::now();
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    let flush = started.elapsed();
    eprintln!("one U-Net call {call:?}; flush during a chunk {flush:?}");
    assert!(
        flush < call,
        "the flush took {flush:?}, one U-Net call {call:?}"
    );

    // The stream restarts cleanly: the frames after the flush leave once, in order, exact.
    assert!(
        h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
            gst::ClockTime,
        >::new()))
    );
    let after: Vec<gst::Buffer> = (0..3)
        .map(|i| make_frame(&info, i, 900 * FRAME_NS))
        .collect();
    for buffer in &after {
        assert_eq!(h.push(buffer.clone()), Ok(gst::FlowSuccess::Ok));
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let out_info =
        gst_video::VideoInfo::from_caps(&h.sinkpad().unwrap().current_caps().unwrap()).unwrap();
    for input in &after {
        let output =
            pull_within(&mut h, Duration::from_secs(300)).expect("a frame after the flush");
        assert_eq!(output.pts(), input.pts());
        let at = locate_source(&info, input, &out_info, &output).expect("the source in the output");
        assert!(source_is_exact(&info, input, &out_info, &output, at));
    }
    events_until_eos(&mut h, Duration::from_secs(60));
    assert!(h.try_pull().is_none());

    let (h, _) = harness_during_a_chunk();
    let started = Instant::now();
    let element = h.element().unwrap();
    element.set_state(gst::State::Ready).unwrap();
    let stop = started.elapsed();
    eprintln!("PLAYING→READY during a chunk {stop:?}");
    assert!(
        stop < call + call / 2 + Duration::from_millis(100),
        "PLAYING→READY took {stop:?}, one U-Net call {call:?}"
    );
    // And the element runs again from READY.
    element.set_state(gst::State::Playing).unwrap();
}

#[test]
fn test_two_elements_share_one_loaded_model() {
    init();
    // A copy of the tiny model that no other test loads.
    let dir = std::env::temp_dir().join(format!("m3ddm-shared-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(tiny_model()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let path = dir.display().to_string();
    let properties = [("model-path", path.as_str()), ("execution-provider", "cpu")];
    let elements = [element(&properties), element(&properties)];
    for element in &elements {
        element.set_state(gst::State::Ready).unwrap();
    }
    assert_eq!(gstm3ddm::engine::model::loads_of(&dir), 1);
    for element in &elements {
        element.set_state(gst::State::Null).unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn test_a_device_list_gives_the_frames_of_one_device_and_spreads_the_windows() {
    // On the CPU, each entry of device-id is one more session set of the model.
    let frames = 60; // strides 15, 5 and 1 in one chunk: four independent stride-1 windows
    let run = |devices: &str| {
        let mut properties = outpaint_properties(60);
        properties.push(("steps", "1".to_string()));
        properties.push(("device-id", devices.to_string()));
        let run = run_stream(&as_refs(&properties), "RGB", 64, 36, frames);
        check_stream(&run, (9, 16));
        run
    };
    let one = run("0");
    let two = run("0,1");
    for (k, (a, b)) in one.outputs.iter().zip(&two.outputs).enumerate() {
        let (a, b) = (a.map_readable().unwrap(), b.map_readable().unwrap());
        assert!(a.as_slice() == b.as_slice(), "frame {k} differs");
    }
    let per_device = two.stats.get::<gst::Array>("windows-per-device").unwrap();
    let per_device: Vec<u64> = per_device.iter().map(|v| v.get::<u64>().unwrap()).collect();
    assert_eq!(per_device.len(), 2);
    assert!(per_device.iter().all(|&n| n > 0), "{per_device:?}");
    assert_eq!(two.stats.get::<&str>("provider").unwrap(), "cpu,cpu");
}
