// SPDX-License-Identifier: MPL-2.0
//! Four live streams in one process on one model directory, as a media
//! server runs them: the model is loaded once, and every stream keeps
//! producing. The streams ask more of the model than it can give (four
//! 15 fps sources, 16-frame chunks), so their windows run back to back on
//! the shared ONNX Runtime sessions, which take the calls of the waiting
//! streams in turn (a fair lock). The bound the test holds each stream to:
//! between two of its windows it waits at most for its next chunk's frames
//! (lookahead / framerate) plus one round of every stream's window (streams
//! × the mean window time, which under this contention already includes the
//! others' calls), plus a second of slack. An unfair lock lets one stream
//! take the session again and again while another waits far longer.

mod common;

use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;

const STREAMS: usize = 4;
const LOOKAHEAD: u32 = 16;
const FPS: u32 = 15;
const RUN: Duration = Duration::from_secs(20);

#[test]
fn four_live_streams_share_one_model_and_none_starves() {
    init();
    let model = model_copy("four-streams");
    let pipelines: Vec<(gst::Pipeline, gst::Element)> = (0..STREAMS)
        .map(|k| {
            let pipeline = gst::parse::launch(&format!(
                "videotestsrc is-live=true pattern={k} \
                 ! video/x-raw,format=I420,width=64,height=36,framerate={FPS}/1 \
                 ! m3ddmoutpaint name=m model-path={} steps=1 lookahead={LOOKAHEAD} \
                   execution-provider=cpu ! fakesink sync=false",
                model.display()
            ))
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
            let element = pipeline.by_name("m").unwrap();
            (pipeline, element)
        })
        .collect();
    for (pipeline, _) in &pipelines {
        pipeline.set_state(gst::State::Playing).unwrap();
    }
    // When each stream's count of windows went up, polled every 10 ms.
    let mut seen = [0u64; STREAMS];
    let mut window_times: Vec<Vec<Instant>> = vec![Vec::new(); STREAMS];
    let started = Instant::now();
    while started.elapsed() < RUN {
        for (k, (pipeline, element)) in pipelines.iter().enumerate() {
            if let Some(message) = pipeline
                .bus()
                .unwrap()
                .pop_filtered(&[gst::MessageType::Error])
            {
                panic!("stream {k}: {message:?}");
            }
            let stats = element.property::<gst::Structure>("stats");
            let windows = stats.get::<u64>("windows-run").unwrap();
            if windows > seen[k] {
                seen[k] = windows;
                window_times[k].push(Instant::now());
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mean_window = pipelines
        .iter()
        .map(|(_, element)| {
            let stats = element.property::<gst::Structure>("stats");
            Duration::from_nanos(stats.get::<u64>("mean-window-time").unwrap())
        })
        .max()
        .unwrap();
    for (pipeline, _) in &pipelines {
        pipeline.set_state(gst::State::Null).unwrap();
    }
    assert_eq!(
        gstm3ddm::engine::model::loads_of(&model),
        1,
        "the model is loaded once for the four streams"
    );
    let _ = std::fs::remove_dir_all(&model);

    let gather = Duration::from_secs_f64(f64::from(LOOKAHEAD) / f64::from(FPS));
    let bound = gather + mean_window * STREAMS as u32 + Duration::from_secs(1);
    for (k, times) in window_times.iter().enumerate() {
        let longest = times
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .max()
            .unwrap_or(RUN);
        // The time from the last window to the end counts as a wait too.
        let tail = started + RUN - *times.last().unwrap_or(&started);
        eprintln!(
            "stream {k}: {} windows, longest wait {longest:?}, after the last {tail:?} \
             (bound {bound:?}: {gather:?} + {STREAMS} × {mean_window:?} + 1 s)",
            seen[k]
        );
        assert!(times.len() >= 3, "stream {k} ran {} windows", times.len());
        assert!(
            longest.max(tail) <= bound,
            "stream {k} waited {:?}",
            longest.max(tail)
        );
    }
}
