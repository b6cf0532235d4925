// SPDX-License-Identifier: MPL-2.0
//! The two reads of a file with `--fill outpaint` (README "Long files"):
//! first the frames are counted (the official global frames lie at `linspace`
//! positions over the real count), then the keyframe pass runs the element
//! with `write-plan` (outputs discarded, nothing encoded) and writes the plan
//! to a temporary file; the output pass then runs with `plan-file`. Each read
//! goes through the same pipeline into the element, so every pass sees the
//! same frames.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gst::prelude::*;

use crate::bus;
use crate::cli::Job;
use crate::pipeline::{self, Outputs};

/// The temporary plan file of a run, removed when dropped.
pub struct PlanFile {
    path: PathBuf,
}

impl Drop for PlanFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Counts the frames and runs the keyframe pass; the job of the output pass
/// then has the plan (`plan-file`).
pub fn keyframe_pass(job: &Job) -> Result<(PlanFile, Job), String> {
    eprintln!(
        "pass 1 of 2: counting the frames of {}",
        job.input.display()
    );
    let frames = count_frames(job)?;
    if frames == 0 {
        return Err(format!("{} has no video frame", job.input.display()));
    }
    let plan = PlanFile {
        path: std::env::temp_dir().join(format!("m3ddm-reframe-{}.plan", std::process::id())),
    };
    let path = plan
        .path
        .to_str()
        .ok_or("the temporary folder's path is not UTF-8")?
        .to_owned();
    eprintln!("pass 1 of 2: keyframes of {frames} frames");
    let mut pass = job.clone();
    pass.element_properties.push(("write-plan", path.clone()));
    pass.element_properties
        .push(("plan-frames", frames.to_string()));
    run_discarded(&pass, |_| ())?;
    if !plan.path.is_file() {
        return Err(format!(
            "the keyframe pass over {} wrote no plan: the file gave fewer frames than the {frames} counted",
            job.input.display()
        ));
    }
    let mut output_pass = job.clone();
    output_pass.element_properties.push(("plan-file", path));
    eprintln!("pass 2 of 2: the outputs");
    Ok((plan, output_pass))
}

/// The frames the element gets from the file (the element itself fills
/// them with a flat colour: no model runs).
fn count_frames(job: &Job) -> Result<u64, String> {
    let mut counting = job.clone();
    counting
        .element_properties
        .push(("fill-mode", "color".to_owned()));
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    run_discarded(&counting, move |outpaint| {
        let sink = outpaint
            .static_pad("sink")
            .expect("the element has a sink pad");
        sink.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            counter.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    })?;
    Ok(count.load(Ordering::Relaxed))
}

/// Runs `job`'s pipeline with its outputs discarded; `prepare` sees the
/// element before the run.
fn run_discarded(job: &Job, prepare: impl FnOnce(&gst::Element)) -> Result<(), String> {
    let reframe = pipeline::build(job, Outputs::Discarded)?;
    prepare(&reframe.outpaint);
    let result = bus::run(&reframe, &job.input);
    let _ = reframe.pipeline.set_state(gst::State::Null);
    result
}
