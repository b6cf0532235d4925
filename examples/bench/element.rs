// SPDX-License-Identifier: MPL-2.0
//! The element section: the element's frames/s in outpaint mode with the tiny
//! model on 300 frames and the share of wall time spent outside the engine
//! (the generator's chunks), and the peak RSS of runs of 300 and 3000 frames
//! (each in a child process of its own).

use std::process::{Command, ExitCode};
use std::time::Instant;

use gst::prelude::*;

use super::support::{BenchResult, project};

/// The glibc mmap threshold of the peak-RSS runs (bytes).
const MAPPED_FROM_BYTES: &str = "65536";

/// Runs `frames` frames of 256×144 I420 through the element and returns the
/// wall time and the element's stats.
fn outpaint_run(frames: u32, steps: u32) -> Result<(f64, gst::Structure), String> {
    gst::init().map_err(|e| e.to_string())?;
    let _ = gstm3ddm::plugin_register_static();
    let model = project().join("models/tiny");
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,format=I420,width=256,height=144,framerate=30/1 \
         ! m3ddmoutpaint name=o model-path={} execution-provider=cpu steps={steps} \
         ! fakesink sync=false",
        model.display()
    ))
    .map_err(|e| e.to_string())?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline".to_string())?;
    let started = Instant::now();
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| e.to_string())?;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::NONE,
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS or an error");
    let wall = started.elapsed().as_secs_f64();
    if let gst::MessageView::Error(err) = msg.view() {
        return Err(format!("{}", err.error()));
    }
    let stats = pipeline
        .by_name("o")
        .expect("named o")
        .property::<gst::Structure>("stats");
    let _ = pipeline.set_state(gst::State::Null);
    Ok((wall, stats))
}

pub fn run() -> BenchResult {
    let frames = 300;
    let (wall, stats) = outpaint_run(frames, 10)?;
    let chunks = stats.get::<u64>("chunks-run").unwrap_or(0) as f64;
    let engine = chunks * stats.get::<u64>("mean-chunk-time").unwrap_or(0) as f64 / 1e9;
    println!(
        "element outpaint ({frames} frames 256x144 I420, tiny model, 10 steps): {:.2} frames/s, \
         wall {wall:.1} s, engine {engine:.1} s, outside the engine {:.1} %",
        frames as f64 / wall,
        100.0 * (wall - engine).max(0.0) / wall
    );
    let mut peaks = Vec::new();
    for frames in [300, 3000] {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        // glibc's default malloc keeps a varying amount of freed memory in its
        // per-thread arenas (300-frame runs alone spread over ~60 MB), which no
        // single pair of runs can compare within 3 %; mapping blocks from 64 KiB
        // on, as m3ddm-reframe does for itself (src/bin/reframe/heap.rs), leaves
        // what the element holds.
        let output = Command::new(exe)
            .env("MALLOC_MMAP_THRESHOLD_", MAPPED_FROM_BYTES)
            .args(["--rss-run", &frames.to_string()])
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&output.stdout);
        let peak = text
            .lines()
            .find_map(|l| l.strip_prefix("peak-rss-kb "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                format!(
                    "the {frames}-frame run failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                )
            })?;
        println!(
            "peak RSS, {frames} frames (1 step, MALLOC_MMAP_THRESHOLD_={MAPPED_FROM_BYTES}): {:.1} MB",
            peak as f64 / 1024.0
        );
        peaks.push(peak);
    }
    println!(
        "peak-rss-3000-vs-300: {:.3}",
        peaks[1] as f64 / peaks[0] as f64
    );
    Ok(())
}

/// In the child process: one run of `frames` frames at 1 step, then its peak RSS.
pub fn rss_child(frames: &str) -> ExitCode {
    let Ok(frames) = frames.parse::<u32>() else {
        eprintln!("bench: --rss-run needs a frame count");
        return ExitCode::FAILURE;
    };
    if let Err(err) = outpaint_run(frames, 1) {
        eprintln!("bench: {err}");
        return ExitCode::FAILURE;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .map(|v| v.trim().trim_end_matches("kB").trim().to_owned())
        .unwrap_or_default();
    println!("peak-rss-kb {peak}");
    ExitCode::SUCCESS
}
