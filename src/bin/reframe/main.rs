// SPDX-License-Identifier: MPL-2.0
//! `m3ddm-reframe INPUT OUTPUT --aspect 9/16 [--aspect 1/1 …] [--expand M] [--fill …] [--model DIR] …`:
//! a video file in, the same video at other aspect ratios out (one file per
//! ratio, from one generation), through the `m3ddmoutpaint` element
//! (registered statically: no GST_PLUGIN_PATH needed). The video is encoded
//! with x264; the audio is copied into every file when the container can carry
//! it. Every failure is one sentence and a non-zero exit, and removes the
//! files the run created. Files are written under a temporary name and
//! renamed when complete; a first Ctrl-C finishes them with the frames done so
//! far, a second stops at once and removes them.
//!
//! Modules: `cli` (arguments → a checked job; `inference` its server options), `outputs` (ratios, shapes and
//! the files written), `pipeline` (the GStreamer pipeline), `bus` (running it,
//! errors → sentences), `interrupt` (Ctrl-C), `ending` (outputs ended early
//! and cleanly), `packages` (which Debian package provides a missing
//! plugin), `streams` (what the input holds), `progress` (the progress bar, or
//! lines, meanwhile), `heap` (glibc heap settings for bounded memory), `twopass` (the keyframe
//! pass, then the output pass in a fresh image of the program).

mod bus;
mod cli;
mod ending;
mod heap;
mod inference;
mod interrupt;
mod outputs;
mod packages;
mod pipeline;
mod progress;
mod streams;
mod twopass;

use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use gst::prelude::*;

use bus::Ending;
use cli::{Cli, CutList, Job};
use outputs::Output;

fn main() -> ExitCode {
    heap::map_large_blocks();
    let result = Cli::parse().into_job().and_then(|job| run(&job));
    match result {
        Ok(Ending::Complete) => ExitCode::SUCCESS,
        Ok(Ending::Interrupted) => ExitCode::from(interrupt::INTERRUPTED_STATUS),
        Err(sentence) => {
            eprintln!("m3ddm-reframe: {sentence}");
            ExitCode::FAILURE
        }
    }
}

fn run(job: &Job) -> Result<Ending, String> {
    for output in &job.outputs {
        check_input(&job.input, &output.path)?;
    }
    interrupt::install()?;
    gst::init().map_err(|err| format!("cannot initialise GStreamer: {err}"))?;
    gstm3ddm::plugin_register_static()
        .map_err(|err| format!("cannot register the m3ddm plugin: {err}"))?;
    let files = job
        .outputs
        .iter()
        .map(OutputFile::create)
        .collect::<Result<Vec<_>, String>>()?;
    let (_plan, planned_job);
    let mut planned_cuts = None;
    let job = if let Some(planned) = &job.planned {
        _plan = twopass::PlanFile::adopt(planned.plan.clone());
        planned_cuts = Some(planned.cuts.clone());
        planned_job = twopass::output_pass(job, &planned.plan)?;
        &planned_job
    } else if job.two_pass {
        let (plan, cuts) = twopass::keyframe_pass(job)?;
        // Only returns when the program cannot start again (then `files` are removed);
        // the fresh image writes them.
        return Err(twopass::continue_in_fresh_process(plan, &cuts));
    } else {
        job
    };
    let reframe = pipeline::build(job, pipeline::Outputs::Written)?;
    interrupt::allow_finishing();
    for output in &job.outputs {
        eprintln!(
            "{} → {} ({}, {})",
            job.input.display(),
            output.path.display(),
            job.container.name(),
            output.shape
        );
    }
    let mut found_cuts = CutList::default();
    let result = bus::run_watching(&reframe, &job.input, &mut |message| {
        found_cuts.note(message)
    });
    let sizes: Vec<Option<String>> = reframe
        .outputs
        .iter()
        .map(|o| output_size(&o.pad))
        .collect();
    let strides = plan_strides(&reframe.outpaint);
    let scene_cuts = planned_cuts.unwrap_or(found_cuts);
    let _ = reframe.pipeline.set_state(gst::State::Null);
    let ending = result?;
    for file in files {
        file.keep()?;
    }
    let streams = reframe.streams.lock().unwrap();
    eprintln!("read {}: {}", job.input.display(), streams.found());
    for (branch, size) in reframe.outputs.iter().zip(sizes) {
        let size = size.unwrap_or_else(|| "video".to_string());
        match ending {
            Ending::Complete => eprintln!(
                "wrote {}: {size}, {}",
                branch.path.display(),
                streams.audio_outcome()
            ),
            Ending::Interrupted => eprintln!(
                "interrupted: wrote {} with the {} frames done: {size}, {}",
                branch.path.display(),
                branch.gate.frames(),
                streams.audio_outcome()
            ),
        }
    }
    if let (Some(strides), Ending::Complete) = (strides, ending) {
        eprintln!("outpainted with the plan at strides {strides}");
    }
    if job.detects_scene_cuts && ending == Ending::Complete {
        eprintln!("{}", scene_cuts.summary());
    }
    Ok(ending)
}

/// The input must be a readable file, and not the output.
fn check_input(input: &Path, output: &Path) -> Result<(), String> {
    let shown = input.display();
    match std::fs::metadata(input) {
        Err(err) if err.kind() == ErrorKind::NotFound => {
            return Err(format!("{shown}: no such file"));
        }
        Err(err) => return Err(format!("cannot read {shown}: {err}")),
        Ok(meta) if meta.is_dir() => {
            return Err(format!("{shown} is a directory, not a video file"));
        }
        Ok(_) => {}
    }
    File::open(input).map_err(|err| format!("cannot read {shown}: {err}"))?;
    let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b);
    if same(input, output) {
        return Err(format!("the output {} is the input file", output.display()));
    }
    Ok(())
}

/// An output file, created under its temporary name before the run (so that
/// an unwritable path fails first), renamed to its own name when complete and
/// removed unless the run succeeded (or was interrupted and finished).
struct OutputFile {
    path: PathBuf,
    partial: PathBuf,
    /// Removes `partial` if the program is stopped at once.
    _registered: interrupt::Partial,
    keep: bool,
}

impl OutputFile {
    fn create(output: &Output) -> Result<OutputFile, String> {
        let path = &output.path;
        if path.is_dir() {
            return Err(format!(
                "cannot write {}: it is a directory",
                path.display()
            ));
        }
        let partial = output.partial_path();
        let registered = interrupt::Partial::register(&partial);
        File::create(&partial).map_err(|err| {
            let reason = match err.kind() {
                ErrorKind::NotFound => "its directory does not exist".to_string(),
                ErrorKind::PermissionDenied => "permission denied".to_string(),
                ErrorKind::IsADirectory => "it is a directory".to_string(),
                _ => err.to_string(),
            };
            format!("cannot write {}: {reason}", path.display())
        })?;
        Ok(OutputFile {
            path: path.to_owned(),
            partial,
            _registered: registered,
            keep: false,
        })
    }

    /// Gives the complete file its own name.
    fn keep(mut self) -> Result<(), String> {
        std::fs::rename(&self.partial, &self.path).map_err(|err| {
            format!(
                "cannot rename {} to {}: {err}",
                self.partial.display(),
                self.path.display()
            )
        })?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// An output's frame size, from the caps its pad negotiated.
fn output_size(pad: &gst::Pad) -> Option<String> {
    let caps = pad.current_caps()?;
    let structure = caps.structure(0)?;
    let width = structure.get::<i32>("width").ok()?;
    let height = structure.get::<i32>("height").ok()?;
    Some(format!("{width}×{height} H.264"))
}

/// The stride list the element generated with (`stats`), when it ran the model.
fn plan_strides(outpaint: &gst::Element) -> Option<String> {
    let stats = outpaint.property::<gst::Structure>("stats");
    stats
        .get::<String>("strides")
        .ok()
        .filter(|s| !s.is_empty())
}
