// SPDX-License-Identifier: MPL-2.0
//! Planner unit tests: the official plan's structure (windows, padding, guides,
//! kept latents, image windows, global frames) and the streaming planner's
//! guarantees (every frame once and in order, the lookahead bound, equality
//! with the official plan when the lookahead covers the clip).

use super::*;

const FRAME_COUNTS: [usize; 12] = [1, 2, 15, 16, 17, 30, 49, 50, 52, 226, 227, 500];

/// Every frame has a latent (unless known) and an image, and both come from
/// windows that really hold the frame at that position.
pub(super) fn check_plan(plan: &ClipPlan, first_known: bool) {
    let n = plan.total_frames;
    for f in 0..n {
        let img = plan.image_source[f];
        assert_eq!(
            plan.windows[img.window].frames[img.position], f,
            "{n} frames: image of {f}"
        );
        // The image is the last window holding the frame.
        assert!(
            plan.windows[img.window + 1..]
                .iter()
                .all(|w| !w.frames.contains(&f)),
            "{n}: {f}"
        );
        match plan.latent_source[f] {
            None => assert!(first_known && f == 0, "{n} frames: frame {f} has no latent"),
            Some(src) => {
                let w = &plan.windows[src.window];
                assert_eq!(w.frames[src.position], f);
                assert!(w.keeps[src.position] && !w.guides[src.position]);
                // No earlier window held it.
                assert!(
                    plan.windows[..src.window]
                        .iter()
                        .all(|w| !w.frames.contains(&f))
                );
            }
        }
    }
    for (i, w) in plan.windows.iter().enumerate() {
        for p in 0..WINDOW_LEN {
            let f = w.frames[p];
            assert!(f < n);
            let earlier =
                plan.windows[..i].iter().any(|o| o.frames.contains(&f)) || (first_known && f == 0);
            assert_eq!(w.guides[p], earlier, "{n} frames: window {i} position {p}");
        }
        // Frame lists rise by the stride until the padding with the last frame.
        let real = w
            .frames
            .windows(2)
            .take_while(|p| p[1] == p[0] + w.stride)
            .count()
            + 1;
        assert!(
            w.frames[real..].iter().all(|&f| f == n - 1),
            "{n}: {:?}",
            w.frames
        );
    }
}

#[test]
fn official_plans_are_consistent() {
    for n in FRAME_COUNTS.into_iter().chain([3, 31, 46, 100, 301, 1000]) {
        check_plan(&official_plan(n).unwrap(), false);
    }
}

#[test]
fn strides_and_window_starts_follow_the_official_loop() {
    let short = official_plan(49).unwrap();
    assert!(short.windows.iter().all(|w| w.stride == 1));
    assert_eq!(
        short
            .windows
            .iter()
            .map(|w| w.frames[0])
            .collect::<Vec<_>>(),
        vec![0, 15, 30, 45]
    );
    let p = official_plan(50).unwrap();
    let strides: Vec<usize> = p.windows.iter().map(|w| w.stride).collect();
    assert_eq!(strides, vec![15, 5, 1, 1, 1, 1]);
    let mut coarse = [49; WINDOW_LEN];
    coarse[..4].copy_from_slice(&[0, 15, 30, 45]);
    assert_eq!(p.windows[0].frames, coarse);
    // 226 frames: one stride-15 window reaching frame 225 exactly.
    let full = official_plan(226).unwrap();
    assert_eq!(full.windows[0].frames, std::array::from_fn(|i| 15 * i));
    assert_eq!(full.windows.iter().filter(|w| w.stride == 5).count(), 3);
}

#[test]
fn one_frame_gets_one_padded_window() {
    let p = official_plan(1).unwrap();
    assert_eq!(p.windows.len(), 1);
    assert_eq!(p.windows[0].frames, [0; WINDOW_LEN]);
    assert_eq!(p.windows[0].guides, [false; WINDOW_LEN]);
    assert_eq!(
        p.latent_source[0],
        Some(FrameSource {
            window: 0,
            position: 0
        })
    );
    assert_eq!(p.global_frames, [0; GLOBAL_FRAMES]);
    assert!(official_plan(0).is_err());
}

#[test]
fn guides_come_from_earlier_windows() {
    // 17 frames: [0..15], then [15, 16 x 15]; frame 15 is a guide there.
    let p = official_plan(17).unwrap();
    assert_eq!(p.windows[1].frames[..2], [15, 16]);
    assert!(p.windows[1].guides[0] && !p.windows[1].guides[1]);
    assert!(p.windows[1].keeps[1] && !p.windows[1].keeps[2]);
    assert_eq!(
        p.latent_source[15],
        Some(FrameSource {
            window: 0,
            position: 15
        })
    );
    assert_eq!(
        p.image_source[15],
        FrameSource {
            window: 1,
            position: 0
        }
    );
}

#[test]
fn clip_of_52_frames_takes_images_from_the_stride_one_windows() {
    // Windows: stride 15, stride 5, then stride 1 at 0, 15, 30, 45.
    let p = official_plan(52).unwrap();
    let mut want = vec![2; 15];
    want.extend([3; 15]);
    want.extend([4; 15]);
    want.extend([5; 7]);
    assert_eq!(p.image_windows(), want);
    // Frame 51 comes from the first stride-15 window and is a guide after it.
    assert_eq!(
        p.latent_source[51],
        Some(FrameSource {
            window: 0,
            position: 4
        })
    );
    assert!(p.windows[5].guides[6]);
}

#[test]
fn global_frames_are_numpys_integer_linspace() {
    assert_eq!(global_frames(16), std::array::from_fn(|i| i));
    assert_eq!(global_frames(226), std::array::from_fn(|i| 15 * i));
    // (N-1)/15 = 1/15: floor(i/15) = 0 except the exact end point.
    let two = global_frames(2);
    assert_eq!(two[..15], [0; 15]);
    assert_eq!(two[15], 1);
    for n in 1..2000 {
        let g = global_frames(n);
        assert_eq!(g[0], 0);
        assert_eq!(g[15], n - 1);
        assert!(g.windows(2).all(|p| p[0] <= p[1]));
    }
}

#[test]
fn window_fps_is_python_floor_division() {
    assert_eq!(window_fps(29.97, 1), 29);
    assert_eq!(window_fps(29.97, 15), 1);
    assert_eq!(window_fps(30.0, 15), 2);
    assert_eq!(window_fps(30.0, 5), 6);
    assert_eq!(window_fps(24.0, 5), 4);
    assert_eq!(window_fps(0.0, 5), 0);
    assert_eq!(window_fps(f64::NAN, 1), 0);
    let w = &official_plan(50).unwrap().windows[0];
    assert_eq!(w.fps_input(59.94), 3);
}

/// Streams `n` frames through a planner with `lookahead`; returns the chunks,
/// checking the lookahead bound as frames arrive.
fn stream(n: usize, lookahead: usize) -> Vec<ChunkPlan> {
    stream_at(n, lookahead, &Strides::official())
}

/// [`stream`] with chunks planned at `strides`.
pub(super) fn stream_at(n: usize, lookahead: usize, strides: &Strides) -> Vec<ChunkPlan> {
    let mut planner = ChunkPlanner::new(lookahead, strides.clone()).unwrap();
    let mut chunks = Vec::new();
    for f in 0..n {
        let ready = planner.push();
        assert_eq!(ready, planner.queued() == lookahead, "frame {f}");
        assert!(planner.queued() <= lookahead);
        if ready {
            let chunk = planner.next_chunk(false).unwrap();
            // The chunk ends with the frame that just arrived.
            assert_eq!(chunk.new_frames.end, f + 1);
            assert_eq!(chunk.new_frames.len(), lookahead);
            chunks.push(chunk);
        } else {
            assert!(planner.next_chunk(false).is_none());
        }
    }
    while let Some(chunk) = planner.next_chunk(true) {
        assert!(chunk.new_frames.len() <= lookahead);
        chunks.push(chunk);
    }
    assert_eq!(planner.queued(), 0);
    assert_eq!(planner.planned(), n);
    chunks
}

#[test]
fn streaming_emits_every_frame_once_in_order() {
    for n in FRAME_COUNTS {
        for lookahead in [1, 2, 15, 16, 17, 50, 100, 226, 227, 500] {
            let chunks = stream(n, lookahead);
            let emitted: Vec<usize> = chunks
                .iter()
                .flat_map(|c| c.emitted_locals().map(|l| c.to_stream(l)))
                .collect();
            assert_eq!(
                emitted,
                (0..n).collect::<Vec<_>>(),
                "{n} frames, lookahead {lookahead}"
            );
            let mut previous_end = None;
            for c in &chunks {
                let label = format!(
                    "{n} frames, lookahead {lookahead}, chunk {:?}",
                    c.new_frames
                );
                assert_eq!(
                    c.carried_guide,
                    previous_end.map(|e: usize| e - 1),
                    "{label}"
                );
                assert_eq!(
                    c.to_stream(c.emitted_locals().start),
                    c.new_frames.start,
                    "{label}"
                );
                assert_eq!(c.emitted_locals().len(), c.new_frames.len(), "{label}");
                check_plan(&c.plan, c.carried_guide.is_some());
                previous_end = Some(c.new_frames.end);
            }
        }
    }
}

#[test]
fn streaming_equals_the_official_plan_when_the_lookahead_covers_the_clip() {
    for n in FRAME_COUNTS {
        for lookahead in [n, n + 1, 500] {
            let chunks = stream(n, lookahead);
            assert_eq!(chunks.len(), 1);
            assert_eq!(chunks[0].carried_guide, None);
            assert_eq!(
                chunks[0].plan,
                official_plan(n).unwrap(),
                "{n} frames, lookahead {lookahead}"
            );
        }
    }
}

#[test]
fn later_chunks_start_from_the_carried_guide() {
    let chunks = stream(500, 226);
    assert_eq!(
        chunks
            .iter()
            .map(|c| c.new_frames.clone())
            .collect::<Vec<_>>(),
        vec![0..226, 226..452, 452..500]
    );
    let second = &chunks[1];
    assert_eq!(second.carried_guide, Some(225));
    assert_eq!(second.local_len(), 227);
    assert!(second.plan.latent_source[0].is_none());
    for w in second.plan.windows.iter().filter(|w| w.frames.contains(&0)) {
        assert!(w.frames.iter().zip(&w.guides).all(|(&f, &g)| f != 0 || g));
    }
    // 49 local frames (48 new): stride 1 only; 227 local: coarse strides.
    assert!(chunks[2].plan.windows.iter().all(|w| w.stride == 1));
    assert_eq!(second.plan.windows[0].stride, 15);
}

#[test]
fn reset_and_bad_lookahead() {
    assert!(ChunkPlanner::new(0, Strides::official()).is_err());
    let mut planner = ChunkPlanner::new(4, Strides::official()).unwrap();
    for _ in 0..6 {
        planner.push();
    }
    assert_eq!(planner.next_chunk(false).unwrap().new_frames, 0..4);
    planner.reset();
    assert_eq!(planner.queued(), 0);
    assert!(planner.next_chunk(true).is_none());
    planner.push();
    let chunk = planner.next_chunk(true).unwrap();
    assert_eq!((chunk.carried_guide, chunk.new_frames), (None, 0..1));
    assert_eq!(chunk.plan.windows[0].frames, [0; WINDOW_LEN]);
}

#[test]
fn a_cut_ends_the_chunk_and_starts_a_plan_of_its_own() {
    let mut planner = ChunkPlanner::new(100, Strides::official()).unwrap();
    // Shot A: frames 0..30, shot B: 30..70 (cut at 30), shot C from 70.
    let mut chunks = Vec::new();
    for frame in 0..90 {
        let ready = if frame == 30 || frame == 70 {
            planner.push_cut()
        } else {
            planner.push()
        };
        assert_eq!(ready, frame == 30 || frame == 70, "frame {frame}");
        while let Some(chunk) = planner.next_chunk(false) {
            chunks.push(chunk);
        }
    }
    chunks.extend(planner.next_chunk(true));
    let ranges: Vec<_> = chunks.iter().map(|c| c.new_frames.clone()).collect();
    assert_eq!(ranges, vec![0..30, 30..70, 70..90]);
    for chunk in &chunks {
        // No guide crosses a cut, and every global frame lies in the chunk's own shot.
        assert_eq!(chunk.carried_guide, None);
        for &g in &chunk.plan.global_frames {
            assert!(chunk.new_frames.contains(&chunk.to_stream(g)));
        }
    }
    // Without a cut, a long shot still splits at the lookahead with a carried guide.
    let mut planner = ChunkPlanner::new(10, Strides::official()).unwrap();
    for _ in 0..15 {
        planner.push();
    }
    planner.next_chunk(false).unwrap();
    assert_eq!(planner.next_chunk(true).unwrap().carried_guide, Some(9));
}

#[test]
fn dropped_frames_are_skipped_and_the_last_emitted_frame_stays_the_guide() {
    let mut planner = ChunkPlanner::new(4, Strides::official()).unwrap();
    for _ in 0..4 {
        planner.push();
    }
    assert_eq!(planner.next_chunk(false).unwrap().new_frames, 0..4);
    for _ in 0..6 {
        planner.push();
    }
    // Frames 4 and 5 left without being generated.
    planner.drop_oldest(2);
    let chunk = planner.next_chunk(false).unwrap();
    assert_eq!(chunk.new_frames, 6..10);
    assert_eq!(chunk.carried_guide, Some(3));
    assert_eq!(chunk.to_stream(0), 3);
    assert_eq!(chunk.to_stream(1), 6);
    assert_eq!(planner.queued(), 0);
}
