// SPDX-License-Identifier: MPL-2.0
//! The two passes give what the whole-clip run gives, the plan file keeps a
//! plan exactly and refuses damaged or foreign files, and the streaming pass
//! holds about one stride-5 window's span of frames.

use std::sync::Arc;

use super::*;
use crate::engine::cancel::Cancel;
use crate::engine::geometry::{Ratio, canvas_layout};
use crate::engine::model::Model;
use crate::engine::pixels::{self, RgbImage};
use crate::engine::planner::Strides;
use crate::engine::stream::StreamOutpainter;
use crate::engine::test_support::{
    moving_column_frame as content_frame, one_step_params, portrait_layout as layout, scratch_dir,
    tiny_model,
};
use crate::engine::window::{Denoiser, window_noise};

fn params() -> DenoiseParams {
    one_step_params(11)
}

fn keyframe_plan(model: &Arc<Model>, layout: &CanvasLayout, frames: usize) -> KeyframePlan {
    keyframe_plan_at(model, layout, frames, &Strides::official())
}

/// The keyframe pass of `content_frame`s planned at `strides`.
pub(super) fn keyframe_plan_at(
    model: &Arc<Model>,
    layout: &CanvasLayout,
    frames: usize,
    strides: &Strides,
) -> KeyframePlan {
    let mut collected = KeyframeFrames::new(*layout, frames, strides).unwrap();
    for k in 0..frames {
        if collected.wants(k) {
            collected.offer(k, content_frame(layout, k)).unwrap();
        }
    }
    assert_eq!(collected.missing(), None);
    let mut worker = Denoiser::new(model.clone(), &params()).unwrap();
    run_keyframe_pass(
        std::slice::from_mut(&mut worker),
        &collected,
        layout,
        &pixels::mask(layout),
        &window_noise(params().seed, layout.canvas),
        (30.0, &params(), strides),
        &Cancel::new(),
    )
    .unwrap()
}

pub(super) fn streamed(
    stream: &mut PlannedStream,
    layout: &CanvasLayout,
    frames: usize,
) -> Vec<RgbImage> {
    let cancel = Cancel::new();
    let mut out = Vec::new();
    for k in 0..frames {
        stream.push(content_frame(layout, k)).unwrap();
        if stream.chunk_ready() {
            out.extend(stream.run_next(false, &cancel).unwrap());
        }
    }
    out.extend(stream.run_next(true, &cancel).unwrap());
    assert_eq!(stream.pending(), 0);
    out
}

#[test]
fn two_passes_equal_the_whole_clip_run() {
    let model = tiny_model();
    let layout = layout(model.canvas());
    let frames = 80; // strides 15, 5 and 1; a padded last window of each
    let plan = keyframe_plan(&model, &layout, frames);
    assert_eq!(
        plan.latents.keyframes().to_vec(),
        vec![0, 15, 30, 45, 60, 75, 79]
    );

    let models = std::slice::from_ref(&model);
    let mut whole =
        StreamOutpainter::new(models, params(), layout, 30.0, frames, Strides::official()).unwrap();
    let cancel = Cancel::new();
    for k in 0..frames {
        whole.push(content_frame(&layout, k)).unwrap();
    }
    let expected = whole.run_next(true, &cancel).unwrap();
    assert_eq!(expected.len(), frames);

    let mut stream = PlannedStream::new(models, plan).unwrap();
    let got = streamed(&mut stream, &layout, frames);
    assert_eq!(got.len(), frames);
    for (k, (a, b)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(a, b, "frame {k}");
    }
    assert!(
        stream.most_held() <= stream.hold(),
        "{}",
        stream.most_held()
    );
    assert!(stream.most_held() < frames);
}

#[test]
fn the_stream_must_match_the_plan() {
    let model = tiny_model();
    let layout = layout(model.canvas());
    let plan = keyframe_plan(&model, &layout, 20);
    let models = std::slice::from_ref(&model);
    let cancel = Cancel::new();

    let mut short = PlannedStream::new(models, plan.clone()).unwrap();
    for k in 0..19 {
        short.push(content_frame(&layout, k)).unwrap();
    }
    let err = short.run_next(true, &cancel).unwrap_err().to_string();
    assert!(
        err.contains("ended after 19 frames") && err.contains("20"),
        "{err}"
    );

    let mut long = PlannedStream::new(models, plan.clone()).unwrap();
    let out = streamed(&mut long, &layout, 20);
    assert_eq!(out.len(), 20);
    let err = long
        .push(content_frame(&layout, 20))
        .unwrap_err()
        .to_string();
    assert!(err.contains("more frames than the 20"), "{err}");

    let other = canvas_layout(64, 48, Ratio::new(9, 16).unwrap(), layout.canvas).unwrap();
    assert!(plan.check_stream(&other, 30.0).is_err());
    assert!(plan.check_stream(&layout, 25.0).is_err());
    plan.check_stream(&layout, 30.0).unwrap();

    let mut foreign = plan.clone();
    foreign.model_identity = "0".repeat(64);
    let err = PlannedStream::new(models, foreign)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("made with model"), "{err}");
}

#[test]
fn the_plan_file_keeps_a_plan_and_refuses_damage() {
    let model = tiny_model();
    let layout = layout(model.canvas());
    let plan = ShotPlans::new(vec![
        keyframe_plan(&model, &layout, 52),
        keyframe_plan(&model, &layout, 20),
    ])
    .unwrap();
    let dir = scratch_dir("plan-file");
    let path = dir.join("clip.plan");
    write_plan(&path, &plan).unwrap();
    let read = read_plan(&path).unwrap();
    assert_eq!(read, plan);
    assert_eq!(plan.cuts(), vec![52]);

    // The latents stay in the file: read when asked for, an error naming the
    // file when it was cut short since.
    let (first, last) = (&read.shots[0].latents, &read.shots[1].latents);
    let keyframe = *first.keyframes().last().unwrap();
    assert_eq!(
        first.keyframe(keyframe).unwrap(),
        plan.shots[0].latents.keyframe(keyframe).unwrap()
    );
    assert_eq!(first.keyframe(keyframe + 1).unwrap(), None);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 8]).unwrap();
    let err = last.global().unwrap_err().to_string();
    assert!(
        err.contains("cannot read the plan file") && err.contains("clip.plan"),
        "{err}"
    );
    std::fs::write(&path, &bytes).unwrap();

    let bytes = std::fs::read(&path).unwrap();
    let mut damaged = bytes.clone();
    *damaged.last_mut().unwrap() ^= 1;
    std::fs::write(&path, &damaged).unwrap();
    let err = read_plan(&path).unwrap_err().to_string();
    assert!(err.contains("sha256"), "{err}");

    std::fs::write(&path, &bytes[..bytes.len() - 8]).unwrap();
    let err = read_plan(&path).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");

    let mut other_version = bytes.clone();
    let field = b"\"format_version\":3";
    let at = bytes.windows(field.len()).position(|w| w == field).unwrap();
    other_version[at + field.len() - 1] = b'9';
    std::fs::write(&path, &other_version).unwrap();
    let err = read_plan(&path).unwrap_err().to_string();
    assert!(err.contains("version 9"), "{err}");
    other_version[at + field.len() - 1] = b'1';
    std::fs::write(&path, &other_version).unwrap();
    let err = read_plan(&path).unwrap_err().to_string();
    assert!(
        err.contains("plan format version 1, this build reads versions 2 and 3"),
        "{err}"
    );

    std::fs::write(&path, b"hello").unwrap();
    let err = read_plan(&path).unwrap_err().to_string();
    assert!(err.contains("not an m3ddm keyframe plan"), "{err}");
    assert!(read_plan(&dir.join("absent.plan")).is_err());
}

#[test]
fn the_streaming_pass_holds_one_stride_five_span() {
    // At 50 frames the last stride-5 window (padded with the last frame) holds all.
    assert_eq!(
        PassSplit::new(50, &Strides::official())
            .unwrap()
            .streaming_hold(),
        50
    );
    // From 91 frames on, never more than a stride-5 window's span.
    for frames in 50..=2000 {
        let hold = PassSplit::new(frames, &Strides::official())
            .unwrap()
            .streaming_hold();
        assert!(
            hold <= 80 || (frames <= 90 && hold == frames),
            "{frames}: {hold}"
        );
    }
    for frames in [300, 3000, 100_000] {
        let split = PassSplit::new(frames, &Strides::official()).unwrap();
        let hold = split.streaming_hold();
        assert!((76..=80).contains(&hold), "{frames} frames: hold {hold}");
        assert!(split.keyframes().len() <= frames / 15 + 2);
    }
    assert_eq!(
        PassSplit::new(30, &Strides::official())
            .unwrap()
            .keyframes()
            .len(),
        0
    );
}

/// The frames of a two-shot clip: shot 0 is `content_frame`, shot 1 another picture.
fn two_shot_frame(layout: &CanvasLayout, k: usize, cut: usize) -> RgbImage {
    if k < cut {
        return content_frame(layout, k);
    }
    let mut image = content_frame(layout, k - cut);
    image.data.iter_mut().for_each(|v| *v = 255 - *v / 2);
    image
}

#[test]
fn two_shots_give_two_plans_and_equal_each_shot_run_alone() {
    let model = tiny_model();
    let layout = layout(model.canvas());
    let (first, second) = (55, 62); // both with stride-15 windows
    let total = first + second;

    // Pass 1, shot by shot, given the cut.
    let mut shots = ShotKeyframes::new(layout, total, &[first], Strides::official()).unwrap();
    let mut worker = Denoiser::new(model.clone(), &params()).unwrap();
    let mut run_shot = |frames: &KeyframeFrames| {
        run_keyframe_pass(
            std::slice::from_mut(&mut worker),
            frames,
            &layout,
            &pixels::mask(&layout),
            &window_noise(params().seed, layout.canvas),
            (30.0, &params(), &Strides::official()),
            &Cancel::new(),
        )
    };
    for k in 0..total {
        let frame = Arc::new(two_shot_frame(&layout, k, first));
        shots.offer(frame, &mut run_shot).unwrap();
    }
    let plans = shots.finish().unwrap();
    assert_eq!(plans.shots.len(), 2);
    assert_eq!(plans.cuts(), vec![first]);
    assert_eq!(plans.total_frames(), total);
    // Each shot's plan is the plan of that shot alone (its own global frames).
    let alone = keyframe_plan(&model, &layout, first);
    assert_eq!(*plans.shots[0], alone);

    // Pass 2 through the shots.
    let models = std::slice::from_ref(&model);
    let mut stream = ShotStream::new(models, Arc::new(plans)).unwrap();
    let cancel = Cancel::new();
    let mut got = Vec::new();
    for k in 0..total {
        stream.push(two_shot_frame(&layout, k, first)).unwrap();
        // As the element does: run while frames are promised, each run giving
        // some (here the first shot leaves whole before the second's frames come).
        while stream.chunk_ready() {
            let frames = stream.run_next(false, &cancel).unwrap();
            assert!(!frames.is_empty(), "a ready stream gave no frame after {k}");
            got.extend(frames);
        }
        if k + 1 == first {
            assert_eq!(
                got.len(),
                first,
                "the first shot, once all in, leaves whole"
            );
        }
    }
    got.extend(stream.run_next(true, &cancel).unwrap());
    assert_eq!(got.len(), total);
    assert_eq!(stream.pending(), 0);
    assert!(
        stream.most_held() <= stream.hold(),
        "{}",
        stream.most_held()
    );

    // Each shot through the whole-clip run on its own.
    let mut expected = Vec::new();
    for (start, len) in [(0, first), (first, second)] {
        let mut whole =
            StreamOutpainter::new(models, params(), layout, 30.0, len, Strides::official())
                .unwrap();
        for k in start..start + len {
            whole.push(two_shot_frame(&layout, k, first)).unwrap();
        }
        expected.extend(whole.run_next(true, &cancel).unwrap());
    }
    assert_eq!(expected.len(), total);
    for (k, (a, b)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(a, b, "frame {k}");
    }

    // A stream shorter than the shots is refused with both counts.
    let mut short = ShotStream::new(models, stream.plans().clone().into()).unwrap();
    for k in 0..first + 3 {
        short.push(two_shot_frame(&layout, k, first)).unwrap();
    }
    let err = short.run_next(true, &cancel).unwrap_err().to_string();
    assert!(
        err.contains(&format!("ended after {} frames", first + 3)),
        "{err}"
    );
    assert!(ShotKeyframes::new(layout, 10, &[10], Strides::official()).is_err());
}
