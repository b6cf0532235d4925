// SPDX-License-Identifier: MPL-2.0
//! Soak: a long stream through `videotestsrc ! m3ddmoutpaint ! fakesink`
//! (10,000 frames in `outpaint` with the tiny model at 1 step, 100,000 in
//! `blur`), with the process's peak RSS taken at every tenth of the run (the
//! kernel's VmHWM, reset through /proc/self/clear_refs after each reading, so
//! each figure is the peak of its own tenth). Memory must be flat (the last
//! tenth's peak within 5% of the second tenth's; the first one loads the
//! model) and the frame counts exact. Ignored by `cargo test`; `make soak` runs
//! it. Frame counts: `M3DDM_SOAK_FRAMES_OUTPAINT`, `M3DDM_SOAK_FRAMES_BLUR`.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gst::prelude::*;

use common::{init, tiny_model};

/// How far the last tenth's peak may be from the second tenth's.
const FLAT_TOLERANCE: f64 = 0.05;
const TENTHS: u64 = 10;

/// A field of /proc/self/status in kB (`VmHWM`, `VmRSS`).
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Resets the peak RSS (VmHWM) to the current RSS.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5")
        .expect("writing 5 to /proc/self/clear_refs resets the peak RSS (Linux 4.0 or newer)");
}

/// The peak RSS of one tenth, and the RSS at its end, in kB.
#[derive(Debug, Clone, Copy)]
struct Sample {
    peak_kb: u64,
    rss_kb: u64,
}

/// A frame count from `var`: a positive multiple of ten.
fn env_frames(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(value) => value
            .parse()
            .ok()
            .filter(|&n: &u64| n > 0 && n % TENTHS == 0)
            .unwrap_or_else(|| panic!("{var}={value} is not a positive multiple of {TENTHS}")),
        Err(_) => default,
    }
}

/// Runs `frames` frames through the element with `element_args` and checks
/// the counts (every frame generated when `generates`) and that memory stays flat.
fn soak(label: &str, element_args: &str, frames: u64, generates: bool) {
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={frames} pattern=ball \
         ! video/x-raw,format=I420,width=128,height=72,framerate=30/1 \
         ! m3ddmoutpaint name=m {element_args} ! fakesink sync=false"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let element = pipeline.by_name("m").unwrap();
    let frames_in = Arc::new(AtomicU64::new(0));
    let frames_out = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let counter = frames_in.clone();
    element
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            counter.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    let (counter, recorded) = (frames_out.clone(), samples.clone());
    element
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let out = counter.fetch_add(1, Ordering::Relaxed) + 1;
            if out % (frames / TENTHS) == 0 {
                recorded.lock().unwrap().push(Sample {
                    peak_kb: status_kb("VmHWM"),
                    rss_kb: status_kb("VmRSS"),
                });
                reset_peak();
            }
            gst::PadProbeReturn::Ok
        });
    reset_peak();
    let started = Instant::now();
    let bus = pipeline.bus().unwrap();
    pipeline
        .set_state(gst::State::Playing)
        .expect("the soak pipeline starts");
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::NONE,
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .unwrap();
    let elapsed = started.elapsed();
    if let gst::MessageView::Error(err) = msg.view() {
        panic!("soak {label}: pipeline error: {err:?}");
    }
    let stats = element.property::<gst::Structure>("stats");
    pipeline.set_state(gst::State::Null).unwrap();

    let (frames_in, frames_out) = (
        frames_in.load(Ordering::Relaxed),
        frames_out.load(Ordering::Relaxed),
    );
    let samples = samples.lock().unwrap().clone();
    let mib = |kb: u64| format!("{:.1}", kb as f64 / 1024.0);
    let peaks: Vec<String> = samples.iter().map(|s| mib(s.peak_kb)).collect();
    let rss: Vec<String> = samples.iter().map(|s| mib(s.rss_kb)).collect();
    eprintln!(
        "soak {label}: {frames_in} frames in, {frames_out} out, in {:.1} s ({:.1} frames/s); \
         peak RSS per tenth (MiB): {}; RSS at each tenth (MiB): {}; stats {stats}",
        elapsed.as_secs_f64(),
        frames_out as f64 / elapsed.as_secs_f64(),
        peaks.join(" "),
        rss.join(" ")
    );
    assert_eq!(
        (frames_in, frames_out),
        (frames, frames),
        "soak {label}: frames in/out"
    );
    assert_eq!(
        (
            stats.get::<u64>("frames-in"),
            stats.get::<u64>("frames-out")
        ),
        (Ok(frames), Ok(frames)),
        "soak {label}: the element's stats {stats}"
    );
    if generates {
        assert_eq!(
            stats.get::<u64>("frames-generated"),
            Ok(frames),
            "soak {label}: every frame generated: {stats}"
        );
    }
    assert_eq!(
        samples.len() as u64,
        TENTHS,
        "soak {label}: one sample per tenth"
    );
    let (second, last) = (samples[1].peak_kb as f64, samples[9].peak_kb as f64);
    assert!(
        (last - second).abs() <= second * FLAT_TOLERANCE,
        "soak {label}: memory grew: the last tenth's peak {} MiB, the second's {} MiB (more than {}% apart)",
        mib(samples[9].peak_kb),
        mib(samples[1].peak_kb),
        FLAT_TOLERANCE * 100.0
    );
}

#[test]
#[ignore = "a long run: make soak"]
fn soak_outpaint_tiny_model_one_step() {
    let frames = env_frames("M3DDM_SOAK_FRAMES_OUTPAINT", 10_000);
    let args = format!(
        "fill-mode=outpaint model-path={} steps=1 execution-provider=cpu",
        tiny_model().display()
    );
    soak("outpaint", &args, frames, true);
}

#[test]
#[ignore = "a long run: make soak"]
fn soak_blur() {
    let frames = env_frames("M3DDM_SOAK_FRAMES_BLUR", 100_000);
    soak("blur", "fill-mode=blur", frames, false);
}
