// SPDX-License-Identifier: MPL-2.0
//! The two reads of a file with `--fill outpaint` (README "Long files"):
//! first the frames are counted (the official global frames lie at `linspace`
//! positions over the real count) and, with `--scene-threshold`, the scene
//! cuts found (each shot gets a plan of its own), then the keyframe pass runs the element
//! with `write-plan` (outputs discarded, nothing encoded) and writes the plan
//! to a temporary file; the output pass then runs with `plan-file`, in a fresh
//! image of the program (`exec`, same process). Each read goes through the
//! same pipeline into the element, so every pass sees the same frames.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gst::prelude::*;

use crate::cli::{CutList, Job};
use crate::pipeline::{self, Outputs};
use crate::{bus, interrupt};

/// The temporary plan file of a run, removed when dropped (or when the
/// program is stopped at once).
pub struct PlanFile {
    path: PathBuf,
    _registered: interrupt::Partial,
}

impl PlanFile {
    /// The plan a keyframe pass of this run wrote (`--output-pass-plan`).
    pub fn adopt(path: PathBuf) -> PlanFile {
        PlanFile {
            _registered: interrupt::Partial::register(&path),
            path,
        }
    }
}

impl Drop for PlanFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Counts the frames (and finds the cuts) and runs the keyframe pass: the plan
/// it wrote and the scene cuts found.
pub fn keyframe_pass(job: &Job) -> Result<(PlanFile, CutList), String> {
    eprintln!(
        "pass 1 of 2: counting the frames of {}",
        job.input.display()
    );
    let (frames, cuts) = count_frames(job)?;
    if frames == 0 {
        return Err(format!("{} has no video frame", job.input.display()));
    }
    let plan = PlanFile::adopt(
        std::env::temp_dir().join(format!("m3ddm-reframe-{}.plan", std::process::id())),
    );
    let path = plan_path(&plan.path)?;
    eprintln!("pass 1 of 2: keyframes of {frames} frames");
    let mut pass = without_cut_detection(job);
    pass.element_properties.push(("write-plan", path));
    let cut_list: Vec<String> = cuts.0.iter().map(u64::to_string).collect();
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
    Ok((plan, cuts))
}

/// The job of the output pass: `job` with the plan at `plan`.
pub fn output_pass(job: &Job, plan: &Path) -> Result<Job, String> {
    let mut output_pass = without_cut_detection(job);
    output_pass
        .element_properties
        .push(("plan-file", plan_path(plan)?));
    Ok(output_pass)
}

/// Runs the output pass in a fresh image of this program, with the arguments
/// of this run and the plan: the keyframe pass's heap (its freed but kept
/// pages, which grow with the file's length) is gone, so the output pass's
/// memory does not depend on the length (README "Long files"). Returns only
/// when the program cannot be started again.
pub fn continue_in_fresh_process(plan: PlanFile, cuts: &CutList) -> String {
    eprintln!("pass 2 of 2: the outputs");
    // `exec` does not return when it succeeds: `plan` is not dropped, the output
    // pass owns the file; when it fails, dropping `plan` removes it.
    // `/proc/self/exe` runs this program even when its file has been replaced.
    let program = Path::new("/proc/self/exe");
    let program = if program.exists() {
        program.to_owned()
    } else {
        match std::env::current_exe() {
            Ok(path) => path,
            Err(err) => return format!("cannot find this program to run the output pass: {err}"),
        }
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "m3ddm-reframe".into());
    let err = Command::new(&program)
        .arg0(arg0)
        .args(args)
        .arg("--output-pass-plan")
        .arg(&plan.path)
        .arg("--output-pass-cuts")
        .arg(cuts.argument())
        .exec();
    format!(
        "cannot start {} again for the output pass: {err}",
        program.display()
    )
}

/// The plan's path as the element's property takes it.
fn plan_path(path: &Path) -> Result<String, String> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("the plan's path {} is not UTF-8", path.display()))
}

/// `job` without scene-cut detection: the plan has the shots, the later reads
/// do not look for cuts.
fn without_cut_detection(job: &Job) -> Job {
    let mut planned = job.clone();
    planned
        .element_properties
        .retain(|(name, _)| *name != "scene-threshold");
    planned
}

/// The frames the element gets from the file and the frames that start a new
/// shot, from its scene-cut messages when the job looks for cuts (the element
/// fills the frames with a flat colour: no model runs; the detector reads the
/// source frames alone, so it finds what an outpainting run finds).
fn count_frames(job: &Job) -> Result<(u64, CutList), String> {
    let mut counting = job.clone();
    counting
        .element_properties
        .push(("fill-mode", "color".to_owned()));
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    let mut cuts = CutList::default();
    run_discarded(
        &counting,
        &mut |message| cuts.note(message),
        move |outpaint| {
            let sink = outpaint
                .static_pad("sink")
                .expect("the element has a sink pad");
            sink.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                counter.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        },
    )?;
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
    result.map(|_| ())
}
