// SPDX-License-Identifier: MPL-2.0
//! Harness tests of the two passes in the element (tiny model, 1 step):
//! `write-plan` then `plan-file` gives the frames of the whole-clip run
//! (lookahead over the whole stream), the latency query reports the plan's
//! smaller hold, a plan of two shots gives each shot as a clip of its own,
//! and every mismatch (settings, model, file, layout, frame
//! count) is an error naming it.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use gst::prelude::*;
use gstm3ddm::engine::twopass::{read_plan, write_plan};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("m3ddm-plan-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Outpaint properties with 1 step and these additions (later ones win).
fn properties(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut all = outpaint_properties(226);
    all.push(("steps", "1".into()));
    all.extend(extra.iter().cloned());
    all
}

/// Pass 1 over `frames` 64×`height` RGB frames: writes the plan to `path`.
fn write_plan_of(path: &Path, frames: u64, height: u32) {
    write_shots_plan_of(path, frames, height, &[]);
}

/// Pass 1 over `frames` 64×`height` RGB frames whose shots start at `cuts`.
fn write_shots_plan_of(path: &Path, frames: u64, height: u32, cuts: &[u64]) {
    let mut extra = vec![
        ("write-plan", path.display().to_string()),
        ("plan-frames", frames.to_string()),
    ];
    if !cuts.is_empty() {
        let cuts: Vec<String> = cuts.iter().map(u64::to_string).collect();
        extra.push(("plan-cuts", cuts.join(",")));
    }
    let props = properties(&extra);
    let _ = std::fs::remove_file(path);
    let run = run_stream(&as_refs(&props), "RGB", 64, height, frames);
    assert_eq!(run.outputs.len(), frames as usize);
    assert!(path.is_file(), "pass 1 wrote no plan");
}

/// Pass 2 with the plan at `plan` over `frames` 64×36 RGB frames; every
/// frame out, in order, the source exact, at 9:16.
fn run_planned(plan: &Path, frames: u64) -> StreamRun {
    let planned = run_stream(
        &as_refs(&properties(&[("plan-file", plan.display().to_string())])),
        "RGB",
        64,
        36,
        frames,
    );
    check_stream(&planned, (9, 16));
    planned
}

#[test]
fn test_two_passes_equal_the_whole_clip_run() {
    let frames = 64; // strides 15, 5 and 1
    let plan = scratch("equal.plan");
    write_plan_of(&plan, frames, 36);
    let planned = run_planned(&plan, frames);
    assert_eq!(
        planned.stats.get::<u64>("frames-generated").unwrap(),
        frames
    );
    let whole = run_stream(&as_refs(&properties(&[])), "RGB", 64, 36, frames);
    assert_same_frames(&planned.outputs, &whole.outputs);
    // The plan's stride-5 and stride-1 windows only: fewer than the whole run's.
    let windows = |run: &StreamRun| run.stats.get::<u64>("windows-run").unwrap();
    assert!(windows(&planned) < windows(&whole));
}

#[test]
fn test_a_plan_of_two_shots_gives_each_shot_as_a_clip_of_its_own() {
    // Both shots long enough for keyframe windows (50 frames and more).
    let (first, frames) = (50, 102);
    let plan = scratch("shots.plan");
    write_shots_plan_of(&plan, frames, 36, &[first]);
    let planned = run_planned(&plan, frames);
    // Each shot alone as a stream, its whole clip held (lookahead 226).
    let info = video_info("RGB", 64, 36);
    let shot_alone = |shot: std::ops::Range<u64>| {
        let inputs = shot.map(|i| make_frame(&info, i, 0)).collect();
        run_buffers(&as_refs(&properties(&[])), info.clone(), inputs).outputs
    };
    let alone = [shot_alone(0..first), shot_alone(first..frames)].concat();
    assert_same_frames(&planned.outputs, &alone);
}

#[test]
fn test_plan_latency_is_the_plan_hold() {
    let plan = scratch("latency.plan");
    write_plan_of(&plan, 300, 36);
    let hold = read_plan(&plan).unwrap().streaming_hold();
    assert!(hold < 100, "{hold}");
    let props = properties(&[("plan-file", plan.display().to_string())]);
    let mut h = harness(&as_refs(&props));
    h.play();
    h.set_src_caps_str("video/x-raw,format=RGB,width=64,height=36,framerate=30/1");
    h.set_upstream_latency(gst::ClockTime::ZERO);
    let expected = gst::ClockTime::SECOND
        .mul_div_floor(hold as u64 + 1, 30)
        .unwrap();
    assert_eq!(h.query_latency(), Some(expected));
}

/// The error message of NULL→READY with these properties.
fn ready_error(props: &[(&'static str, String)]) -> String {
    let element = element(&as_refs(props));
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    assert!(element.set_state(gst::State::Ready).is_err());
    let msg = bus.pop_filtered(&[gst::MessageType::Error]).unwrap();
    let _ = element.set_state(gst::State::Null);
    match msg.view() {
        gst::MessageView::Error(err) => err.error().message().to_string(),
        _ => unreachable!(),
    }
}

/// The error posted while `frames` 64×`height` frames (and EOS) go through.
fn stream_error(props: &[(&'static str, String)], height: u32, frames: u64) -> String {
    let mut h = harness(&as_refs(props));
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    h.play();
    let info = video_info("RGB", 64, height);
    h.set_src_caps(info.to_caps().unwrap());
    for i in 0..frames {
        if h.push(make_frame(&info, i, 0)).is_err() {
            break;
        }
    }
    h.push_event(gst::event::Eos::new());
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(300),
            &[gst::MessageType::Error],
        )
        .expect("an error message");
    match msg.view() {
        gst::MessageView::Error(err) => err.error().message().to_string(),
        _ => unreachable!(),
    }
}

#[test]
fn test_plan_mismatches_are_errors() {
    let plan = scratch("mismatch.plan");
    write_plan_of(&plan, 20, 36);
    let with_plan = |extra: &[(&'static str, String)]| {
        let mut props = properties(&[("plan-file", plan.display().to_string())]);
        props.extend(extra.iter().cloned());
        props
    };

    let err = stream_error(&with_plan(&[]), 36, 21);
    assert!(err.contains("more frames than the 20"), "{err}");
    let err = stream_error(&with_plan(&[]), 36, 19);
    assert!(err.contains("ended after 19 frames"), "{err}");
    let err = stream_error(&with_plan(&[]), 48, 20);
    assert!(err.contains("the plan is for a 128 canvas"), "{err}");

    let err = ready_error(&with_plan(&[("steps", "3".into())]));
    assert!(err.contains("steps is 3, the plan's is 1"), "{err}");
    let err = ready_error(&with_plan(&[("scene-threshold", "0.3".into())]));
    assert!(err.contains("scene-threshold"), "{err}");

    let mut foreign = read_plan(&plan).unwrap();
    std::sync::Arc::make_mut(&mut foreign.shots[0]).model_identity = "f".repeat(64);
    let other = scratch("foreign.plan");
    write_plan(&other, &foreign).unwrap();
    let err = ready_error(&properties(&[("plan-file", other.display().to_string())]));
    assert!(err.contains("made with model ffff"), "{err}");

    std::fs::write(&other, b"not a plan at all").unwrap();
    let err = ready_error(&properties(&[("plan-file", other.display().to_string())]));
    assert!(err.contains("not an m3ddm keyframe plan"), "{err}");

    let err = ready_error(&properties(&[("write-plan", other.display().to_string())]));
    assert!(err.contains("plan-frames"), "{err}");
    for cuts in ["12,x", "12,5", "20"] {
        let err = ready_error(&properties(&[
            ("write-plan", other.display().to_string()),
            ("plan-frames", "20".into()),
            ("plan-cuts", cuts.into()),
        ]));
        assert!(err.contains("plan-cuts"), "{cuts}: {err}");
    }
}
