// SPDX-License-Identifier: MPL-2.0
//! No silent stall: an H.264 + AAC file through a demuxer whose audio branch
//! has a default `queue` (1 s) while the element waits for `lookahead` frames
//! (226, 7.5 s at 30 fps). The full audio queue blocks the demuxer, so no
//! more video comes; after `stall-timeout` the element warns once (naming the
//! full branch and the queue size that avoids it) and runs the frames it
//! holds, so the file completes with every frame and the whole audio. With
//! the README's queue settings the same pipeline completes without a warning.
//! The encoder is x264enc with `tune=zerolatency`: its default lookahead holds
//! about 1.5 s of frames itself, which hangs such a pipeline even without the
//! element (README "Latency and memory").

mod common;
#[allow(dead_code)]
mod media;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gst::prelude::*;

/// Frames of the test file (4 s at 30 fps): fewer than the default lookahead.
const FRAMES: u64 = 120;
/// The stall timeout of the first test (the default, 3 s, would only make it longer).
const STALL_TIMEOUT_MS: u64 = 1000;

fn dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("stall");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The test file, made once.
fn source_file() -> PathBuf {
    let path = dir().join("av.mp4");
    if !path.exists() {
        let partial = dir().join("av-partial.mp4");
        media::make_mp4(&partial, FRAMES, true);
        std::fs::rename(&partial, &path).unwrap();
    }
    path
}

/// What a run posted: its warnings (as text) and how long it took.
struct Run {
    warnings: Vec<String>,
    took: Duration,
}

/// Runs the demuxer pipeline with `audio_queue` on the audio branch and
/// `element` as the element's properties; fails on an error or after 90 s.
fn run_demuxer_pipeline(output: &Path, audio_queue: &str, element: &str) -> Run {
    common::init();
    let description = format!(
        "filesrc location={input} ! qtdemux name=d d.video_0 ! queue ! decodebin ! videoconvert \
         ! m3ddmoutpaint model-path={model} steps=1 execution-provider=cpu {element} \
         ! videoconvert ! x264enc tune=zerolatency ! mp4mux name=m ! filesink location={output} \
         d.audio_0 ! {audio_queue} ! aacparse ! m.",
        input = source_file().display(),
        model = common::tiny_model().display(),
        output = output.display(),
    );
    let pipeline = gst::parse::launch(&description).unwrap();
    let started = Instant::now();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let mut warnings = Vec::new();
    loop {
        let message = bus
            .timed_pop(gst::ClockTime::from_seconds(90))
            .unwrap_or_else(|| panic!("no EOS within 90 s (warnings: {warnings:?})"));
        match message.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(err) => panic!("{} ({:?})", err.error(), err.debug()),
            gst::MessageView::Warning(warning) => warnings.push(warning.error().to_string()),
            _ => {}
        }
    }
    let took = started.elapsed();
    pipeline.set_state(gst::State::Null).unwrap();
    Run { warnings, took }
}

/// Every frame and the whole audio of the source are in `output`.
fn assert_complete(output: &Path) {
    let source = media::decode(&source_file());
    let out = media::decode(output);
    assert_eq!(out.video_frames, FRAMES, "video frames out");
    // 9:16 around the 160-pixel-wide source: 160 × 284.4, to the even size below.
    assert_eq!((out.width, out.height), (160, 284), "9:16 frames");
    let (Some(audio_in), Some(audio_out)) = (source.audio, out.audio) else {
        panic!("audio in {:?}, out {:?}", source.audio, out.audio);
    };
    assert_eq!(audio_out, audio_in, "the whole audio");
}

#[test]
fn a_full_audio_queue_gives_one_warning_and_every_frame() {
    let output = dir().join("default-queues.mp4");
    let run = run_demuxer_pipeline(
        &output,
        "queue",
        &format!("stall-timeout={STALL_TIMEOUT_MS}"),
    );
    eprintln!(
        "default queues: {:?}, warnings {:?}",
        run.took, run.warnings
    );
    assert_eq!(run.warnings.len(), 1, "one warning: {:?}", run.warnings);
    let warning = &run.warnings[0];
    for needed in ["another branch", "queue", "lookahead", "7.5 s"] {
        assert!(warning.contains(needed), "{needed:?} in {warning:?}");
    }
    assert_complete(&output);
}

#[test]
fn the_readme_queue_settings_give_no_warning() {
    let output = dir().join("readme-queues.mp4");
    let run = run_demuxer_pipeline(
        &output,
        "queue max-size-time=0 max-size-buffers=0 max-size-bytes=0",
        "",
    );
    eprintln!("README queues: {:?}", run.took);
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
    assert_complete(&output);
}
