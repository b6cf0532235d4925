// SPDX-License-Identifier: MPL-2.0
//! Live safety: a live 30 fps source and a model far too slow for real time.
//! Every frame must leave within `max-latency` of its capture, in order, none
//! lost; the frames whose generated area was late leave with the blur fill,
//! are counted, and the episode is announced by a warning.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use gst::prelude::*;

/// How late (past `max-latency`) a frame may reach the sink: the sink thread's
/// own scheduling on a busy 2-core machine.
const SCHEDULING_SLACK_MS: u64 = 150;

/// What a live run gave: each frame's lateness, the warnings, the stats.
struct LiveRun {
    arrivals: Vec<(gst::ClockTime, gst::ClockTime)>,
    warnings: usize,
    stats: gst::Structure,
}

/// 300 frames of a live 30 fps source through the element with `steps` and
/// `max-latency` (ms), each frame's time from capture to the sink recorded.
fn live_run(frames: u64, steps: u32, max_latency_ms: u64) -> LiveRun {
    init();
    let (pipeline, sink) = pipeline_with_appsink(
        &format!(
            "videotestsrc is-live=true num-buffers={frames} pattern=ball \
             ! video/x-raw,format=RGB,width=64,height=36,framerate=30/1 \
             ! m3ddmoutpaint name=o model-path={} execution-provider=cpu steps={steps} lookahead=16 \
               max-latency={} \
             ! appsink name=out sync=false",
            tiny_model().display(),
            max_latency_ms * 1_000_000
        ),
        "out",
    );
    // (pts, how long after its capture time the frame reached the sink)
    let arrivals: Arc<Mutex<Vec<(gst::ClockTime, gst::ClockTime)>>> = Default::default();
    let record = arrivals.clone();
    let clocked = pipeline.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let pts = sample.buffer().unwrap().pts().unwrap();
                let now = clocked.current_running_time().unwrap();
                record.lock().unwrap().push((pts, now.saturating_sub(pts)));
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut warnings = 0;
    loop {
        let msg = bus
            .timed_pop(gst::ClockTime::from_seconds(120))
            .expect("EOS within 120 s");
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(err) => panic!("pipeline error: {err:?}"),
            gst::MessageView::Warning(w) if w.error().message().contains("blur fill") => {
                warnings += 1
            }
            _ => {}
        }
    }
    let stats = pipeline
        .by_name("o")
        .unwrap()
        .property::<gst::Structure>("stats");
    pipeline.set_state(gst::State::Null).unwrap();
    let arrivals = std::mem::take(&mut *arrivals.lock().unwrap());
    LiveRun {
        arrivals,
        warnings,
        stats,
    }
}

/// Every frame left, in order, within `max_latency_ms`; generated and degraded add up.
fn check_on_time(run: &LiveRun, frames: u64, max_latency_ms: u64) {
    assert_eq!(run.arrivals.len() as u64, frames, "every frame leaves");
    assert!(
        run.arrivals.windows(2).all(|w| w[0].0 < w[1].0),
        "frames leave in order"
    );
    let latest = run.arrivals.iter().map(|(_, late)| *late).max().unwrap();
    eprintln!(
        "latest frame: {latest} after its capture; stats {}",
        run.stats
    );
    assert!(
        latest.mseconds() <= max_latency_ms + SCHEDULING_SLACK_MS,
        "a frame left {latest} after its capture, max-latency is {max_latency_ms} ms"
    );
    let generated = run.stats.get::<u64>("frames-generated").unwrap();
    let degraded = run.stats.get::<u64>("frames-degraded").unwrap();
    assert_eq!(generated + degraded, frames);
    assert!(
        run.warnings <= degraded as usize,
        "one warning per episode, not per frame"
    );
}

#[test]
fn test_a_live_stream_keeps_its_frame_rate_with_a_slow_model() {
    // 10 steps: a 16-frame window takes many seconds here, far beyond 1.5 s.
    let run = live_run(300, 10, 1500);
    check_on_time(&run, 300, 1500);
    assert!(run.stats.get::<u64>("frames-degraded").unwrap() > 0);
    assert!(run.warnings >= 1, "the degraded episode is announced");
}

#[test]
fn test_a_live_stream_generates_what_it_can_in_time() {
    // 1 step: a 16-frame chunk takes about a second or two; 3 s is enough for most.
    let run = live_run(150, 1, 3000);
    check_on_time(&run, 150, 3000);
    assert!(
        run.stats.get::<u64>("frames-generated").unwrap() > 0,
        "{}",
        run.stats
    );
}
