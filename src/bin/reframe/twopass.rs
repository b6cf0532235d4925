// SPDX-License-Identifier: MPL-2.0
//! The two reads of a file with `--fill outpaint` (README "Long files"):
//! first the frames are counted (the official global frames lie at `linspace`
//! positions over the real count) and, with `--scene-threshold`, the scene
//! cuts found (each shot gets a plan of its own), then the keyframe pass runs the element
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

/// Counts the frames (and finds the cuts) and runs the keyframe pass; the job
/// of the output pass then has the plan (`plan-file`). Also gives the number
/// of scene cuts found.
pub fn keyframe_pass(job: &Job) -> Result<(PlanFile, Job, usize), String> {
    eprintln!(
        "pass 1 of 2: counting the frames of {}",
        job.input.display()
    );
    let (frames, cuts) = count_frames(job)?;
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
    // The plan has the shots: the later reads do not look for cuts.
    let mut planned = job.clone();
    planned
        .element_properties
        .retain(|(name, _)| *name != "scene-threshold");
    let mut pass = planned.clone();
    pass.element_properties.push(("write-plan", path.clone()));
    let cut_list: Vec<String> = cuts.iter().map(u64::to_string).collect();
    pass.element_properties
        .push(("plan-cuts", cut_list.join(",")));
    pass.element_properties
        .push(("plan-frames", frames.to_string()));
    run_discarded(&pass, &mut |_| (), |_| ())?;
    if !plan.path.is_file() {
        return Err(format!(
            "the keyframe pass over {} wrote no plan: the file gave fewer frames than the {frames} counted",
            job.input.display()
        ));
    }
    let mut output_pass = planned;
    output_pass.element_properties.push(("plan-file", path));
    eprintln!("pass 2 of 2: the outputs");
    Ok((plan, output_pass, cuts.len()))
}

/// The frames the element gets from the file and the frames that start a new
/// shot, from its scene-cut messages when the job looks for cuts (the element
/// fills the frames with a flat colour: no model runs).
fn count_frames(job: &Job) -> Result<(u64, Vec<u64>), String> {
    let mut counting = job.clone();
    counting
        .element_properties
        .push(("fill-mode", "color".to_owned()));
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    let mut cuts = Vec::new();
    let mut watch = |message: &gst::StructureRef| {
        if message.name() == "m3ddmoutpaint-scene-cut"
            && let Ok(frame) = message.get::<u64>("frame")
        {
            cuts.push(frame);
        }
    };
    run_discarded(&counting, &mut watch, move |outpaint| {
        let sink = outpaint
            .static_pad("sink")
            .expect("the element has a sink pad");
        sink.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            counter.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    })?;
    Ok((count.load(Ordering::Relaxed), cuts))
}

/// Runs `job`'s pipeline with its outputs discarded; `prepare` sees the
/// element before the run, `watch` every element message.
fn run_discarded(
    job: &Job,
    watch: &mut dyn FnMut(&gst::StructureRef),
    prepare: impl FnOnce(&gst::Element),
) -> Result<(), String> {
    let reframe = pipeline::build(job, Outputs::Discarded)?;
    prepare(&reframe.outpaint);
    let result = bus::run_watching(&reframe, &job.input, watch);
    let _ = reframe.pipeline.set_state(gst::State::Null);
    result
}
