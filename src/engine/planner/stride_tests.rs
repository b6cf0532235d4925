// SPDX-License-Identifier: MPL-2.0
//! Planner tests at other stride lists than the official one, M3DDM+'s
//! 5, 3, 1 first: the plan against a direct transcription of M3DDM+'s loop
//! (tamaki-lab/M3DDM-Plus `src/inference.py`, `VideoOutpaintingInference.
//! outpaint`), against a plan worked out by hand from that loop, and against
//! the properties any coarse-to-fine plan has; and the checks of a list.

use super::tests::{check_plan, stream_at};
use super::*;

fn plus() -> Strides {
    Strides::parse("5,3,1").unwrap()
}

/// M3DDM+'s loop, written as its Python reads: `strides = [1]` under 50
/// frames; per stride, `stride_indexes = select_indexes[::stride]`, a window
/// at each `start_frame in range(0, N // stride - 1, 15)` holding
/// `stride_indexes[start_frame:start_frame + 16]` padded with the last frame;
/// after each window, every frame it holds has a latent (`all_latents`).
/// Returns per window its stride, frames and which positions had a latent
/// before it ran (`already_outpainted_latents` not None: mask 0).
fn m3ddm_plus_loop(n: usize, strides: &[usize]) -> Vec<(usize, Vec<usize>, Vec<bool>)> {
    let strides: Vec<usize> = if n < 50 { vec![1] } else { strides.to_vec() };
    let select_indexes: Vec<usize> = (0..n).collect();
    let mut all_latents = vec![false; n];
    let mut windows = Vec::new();
    for stride in strides {
        let stride_indexes: Vec<usize> = select_indexes.iter().copied().step_by(stride).collect();
        let mut start_frame = 0;
        while (start_frame as isize) < (n / stride) as isize - 1 {
            let end = (start_frame + 16).min(stride_indexes.len());
            let mut selected: Vec<usize> = stride_indexes[start_frame.min(end)..end].to_vec();
            while selected.len() < 16 {
                selected.push(select_indexes[n - 1]);
            }
            let already: Vec<bool> = selected.iter().map(|&f| all_latents[f]).collect();
            for &f in &selected {
                all_latents[f] = true;
            }
            windows.push((stride, selected, already));
            start_frame += 15;
        }
    }
    windows
}

#[test]
fn the_plan_at_5_3_1_is_m3ddm_plus_loop() {
    for n in (2..=130).chain([226, 227, 300, 451, 1000]) {
        let plan = plan_clip(n, false, &plus()).unwrap();
        let reference = m3ddm_plus_loop(n, &[5, 3, 1]);
        let ours: Vec<(usize, Vec<usize>, Vec<bool>)> = plan
            .windows
            .iter()
            .map(|w| (w.stride, w.frames.to_vec(), w.guides.to_vec()))
            .collect();
        assert_eq!(ours, reference, "{n} frames");
        check_plan(&plan, false);
    }
}

#[test]
fn fifty_frames_at_5_3_1_as_worked_out_from_m3ddm_plus_loop() {
    // N = 50: stride 5 holds 0, 5, .., 45 (10 entries; `range(0, 9, 15)`: one
    // window), padded with frame 49; stride 3 holds 0, 3, .., 45 (`range(0,
    // 15, 15)`: one window, frame 48 in none), its guides the multiples of 15
    // the stride-5 window made; stride 1 starts at 0, 15, 30, 45.
    let plan = plan_clip(50, false, &plus()).unwrap();
    let frames: Vec<(usize, Vec<usize>)> = plan
        .windows
        .iter()
        .map(|w| (w.stride, w.frames.to_vec()))
        .collect();
    let padded = |mut v: Vec<usize>| {
        v.resize(16, 49);
        v
    };
    assert_eq!(
        frames,
        vec![
            (5, padded((0..50).step_by(5).collect())),
            (3, (0..48).step_by(3).collect()),
            (1, (0..16).collect()),
            (1, (15..31).collect()),
            (1, (30..46).collect()),
            (1, padded((45..50).collect())),
        ]
    );
    let guides_of = |w: usize| -> Vec<usize> {
        let window = &plan.windows[w];
        (0..WINDOW_LEN)
            .filter(|&p| window.guides[p])
            .map(|p| window.frames[p])
            .collect()
    };
    assert_eq!(guides_of(0), Vec::<usize>::new());
    assert_eq!(guides_of(1), vec![0, 15, 30, 45]);
    // Frame 48 (in no coarse window) is made by the last stride-1 window.
    assert_eq!(plan.latent_source[48].map(|s| s.window), Some(5));
}

#[test]
fn coarse_to_fine_plans_cover_every_frame_and_guide_from_earlier_passes() {
    for list in ["5,3,1", "15,5,1", "10,1", "3,2,1", "15,14,13,1", "1"] {
        let strides = Strides::parse(list).unwrap();
        for n in [1, 2, 16, 17, 49, 50, 51, 64, 99, 100, 226, 227, 500] {
            let plan = plan_clip(n, false, &strides).unwrap();
            check_plan(&plan, false);
            let label = format!("strides {list}, {n} frames");
            let runs = strides.for_frames(n);
            // Passes in order, each pass's windows start every 15 strided entries.
            let order: Vec<usize> = plan.windows.iter().map(|w| w.stride).collect();
            let mut expected_order = order.clone();
            expected_order.sort_by_key(|s| runs.iter().position(|r| r == s));
            assert_eq!(order, expected_order, "{label}");
            for &stride in runs {
                let starts: Vec<usize> = plan
                    .windows
                    .iter()
                    .filter(|w| w.stride == stride)
                    .map(|w| w.frames[0])
                    .collect();
                let want: Vec<usize> = (0..(n / stride).saturating_sub(1))
                    .step_by(WINDOW_STEP)
                    .map(|k| k * stride)
                    .collect();
                if n > 1 {
                    assert_eq!(starts, want, "{label}, stride {stride}");
                }
            }
            // The last pass is stride 1; its last window reaches the last frame
            // at a real position (its padding, if any, repeats that frame).
            let last = plan.windows.last().unwrap();
            assert_eq!(last.stride, 1, "{label}");
            assert!(last.frames.contains(&(n - 1)), "{label}");
            // A position is a guide exactly when an earlier window (of this
            // pass or an earlier one) held its frame.
            for (w, window) in plan.windows.iter().enumerate() {
                for (p, &f) in window.frames.iter().enumerate() {
                    let first_holder = plan.windows.iter().position(|o| o.frames.contains(&f));
                    assert_eq!(window.guides[p], first_holder != Some(w), "{label}");
                }
            }
        }
    }
}

#[test]
fn chunks_at_5_3_1_equal_the_plan_when_the_lookahead_covers_the_clip() {
    for n in [1, 30, 50, 77, 151, 300] {
        let chunks = stream_at(n, n, &plus());
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].plan, plan_clip(n, false, &plus()).unwrap());
    }
    // Over a shorter lookahead every frame still leaves once, in order.
    let chunks = stream_at(300, 61, &plus());
    let emitted: Vec<usize> = chunks
        .iter()
        .flat_map(|c| c.emitted_locals().map(|l| c.to_stream(l)))
        .collect();
    assert_eq!(emitted, (0..300).collect::<Vec<_>>());
    assert!(chunks.iter().all(|c| c.plan.windows[0].stride == 5));
}

#[test]
fn the_official_list_is_the_default_and_reads_back() {
    assert_eq!(Strides::default().as_slice(), &[15, 5, 1]);
    assert_eq!(
        official_plan(300).unwrap(),
        plan_clip(300, false, &Strides::default()).unwrap()
    );
    assert_eq!(Strides::parse(" 5, 3 ,1 ").unwrap(), plus());
    assert_eq!(plus().to_string(), "5,3,1");
    assert_eq!(plus().keyframe_stride(), Some(5));
    assert_eq!(Strides::parse("1").unwrap().keyframe_stride(), None);
}

#[test]
fn bad_lists_are_refused_with_a_sentence() {
    for (text, says) in [
        ("", "not a whole number"),
        ("5,,1", "not a whole number"),
        ("5;3;1", "not a whole number"),
        ("-5,1", "not a whole number"),
        ("5,3", "does not end in 1"),
        ("1,5", "not strictly decreasing (1 then 5)"),
        ("5,5,1", "not strictly decreasing (5 then 5)"),
        ("16,5,1", "the stride 16: each stride must be 1 to 15"),
        ("5,0", "the stride 0"),
    ] {
        let err = Strides::parse(text).unwrap_err().to_string();
        assert!(err.contains(says), "`{text}`: {err}");
    }
    let err = Strides::new(Vec::new()).unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
}
