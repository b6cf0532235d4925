// SPDX-License-Identifier: MPL-2.0
//! Runs the pipeline to its end and turns what its bus says into the tool's
//! result: EOS is success; an error becomes one sentence that names the file
//! or the part at fault (for a missing decoder or demuxer, GStreamer's
//! missing-plugin message and the Debian package that provides it). After a
//! first Ctrl-C the outputs are ended where they are (`ending.rs`) and the
//! EOS that follows says the run was interrupted.

use std::path::Path;
use std::time::{Duration, Instant};

use gst::prelude::*;

use crate::pipeline::Reframe;
use crate::progress::{Progress, Report};
use crate::{ending, heap, interrupt, packages};

/// How a run that reached EOS ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The whole input went through.
    Complete,
    /// Ctrl-C: the outputs were finished with the frames done so far.
    Interrupted,
}

/// How long the loop waits for a message before it updates the progress.
const TICK: Duration = Duration::from_millis(500);
/// How often freed heap pages go back to the system while the pipeline runs.
const TRIM_EVERY: Duration = Duration::from_millis(500);
/// How long a pipeline that failed to start has to say why.
const START_ERROR_WAIT: Duration = Duration::from_secs(5);

/// Plays the pipeline until EOS or the first error, showing its progress;
/// `watch` sees every element message.
pub fn run_watching(
    reframe: &Reframe,
    input: &Path,
    watch: &mut dyn FnMut(&gst::StructureRef),
) -> Result<Ending, String> {
    let mut progress = Progress::new();
    let result = play(reframe, input, &mut progress, watch);
    match result {
        Ok(Ending::Complete) => progress.finish(&reframe.outpaint),
        _ => progress.abandon(),
    }
    result
}

fn play(
    reframe: &Reframe,
    input: &Path,
    progress: &mut Progress,
    watch: &mut dyn FnMut(&gst::StructureRef),
) -> Result<Ending, String> {
    let pipeline = &reframe.pipeline;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let start_failed = pipeline.set_state(gst::State::Playing).is_err();
    let mut missing_plugins = Vec::new();
    let mut waited = Duration::ZERO;
    let mut trimmed = Instant::now();
    let mut ending = Ending::Complete;
    loop {
        if ending == Ending::Complete && interrupt::requested() {
            progress.abandon();
            eprintln!(
                "\ninterrupted: finishing the output with the frames done so far (Ctrl-C again stops at once and removes it)"
            );
            ending::end_outputs_here(reframe);
            ending = Ending::Interrupted;
        }
        if trimmed.elapsed() >= TRIM_EVERY {
            heap::return_freed_pages();
            trimmed = Instant::now();
        }
        let Some(message) = bus.timed_pop(gst::ClockTime::try_from(TICK).unwrap()) else {
            waited += TICK;
            if start_failed && waited >= START_ERROR_WAIT {
                return Err("the pipeline could not start".to_string());
            }
            if ending == Ending::Complete {
                progress.tick(&reframe.outpaint);
            }
            continue;
        };
        match message.view() {
            gst::MessageView::Eos(_) => return Ok(ending),
            gst::MessageView::Error(err) => {
                return Err(error_sentence(reframe, err, &missing_plugins, input));
            }
            gst::MessageView::Element(element) => {
                if let Some(structure) = element.structure() {
                    watch(structure);
                }
                if let Some(report) = element.structure().and_then(Report::from_message) {
                    if ending == Ending::Complete {
                        progress.report(&report);
                    }
                } else if let Some(missing) = packages::missing_plugin(&message) {
                    let sentence = format!("cannot read {}: {}", input.display(), missing.sentence);
                    if stops_the_run(reframe, &message, &missing) {
                        return Err(sentence);
                    }
                    missing_plugins.push(sentence);
                }
            }
            _ => {}
        }
    }
}

/// Whether a missing plugin stops the run. A decoder inside one of the tool's
/// decodebins is needed (and GStreamer would wait for it rather than fail); so
/// is a video decoder or a container demuxer that parsebin asks for. A missing
/// audio decoder is not needed when the audio is copied.
fn stops_the_run(
    reframe: &Reframe,
    message: &gst::Message,
    missing: &packages::MissingPlugin,
) -> bool {
    let Some(top_level) = message.src().and_then(|src| top_level(reframe, src)) else {
        return false;
    };
    let factory = top_level.factory().map(|f| f.name().to_string());
    match factory.as_deref() {
        Some("decodebin") => true,
        Some("parsebin") => missing
            .media_type
            .as_deref()
            .is_some_and(|t| t.starts_with("video/")),
        _ => false,
    }
}

/// The top-level element of the pipeline that `object` is, or is inside.
fn top_level(reframe: &Reframe, object: &gst::Object) -> Option<gst::Element> {
    let pipeline = reframe.pipeline.upcast_ref::<gst::Object>();
    let mut current = object.clone();
    loop {
        let parent = current.parent()?;
        if &parent == pipeline {
            return current.downcast().ok();
        }
        current = parent;
    }
}

fn error_sentence(
    reframe: &Reframe,
    err: &gst::message::Error,
    missing_plugins: &[String],
    input: &Path,
) -> String {
    let input = input.display();
    let missing_plugin_error = err.error().matches(gst::CoreError::MissingPlugin)
        || err.error().matches(gst::StreamError::CodecNotFound);
    if let (true, Some(missing)) = (missing_plugin_error, missing_plugins.first()) {
        return missing.clone();
    }
    let Some(source) = err.src() else {
        return err.error().to_string();
    };
    // Errors the tool posts itself are sentences already.
    if source == reframe.pipeline.upcast_ref::<gst::Object>() {
        return err.error().to_string();
    }
    let what = err.error().to_string();
    if err.error().matches(gst::StreamError::TypeNotFound) {
        return format!("{input} is not a video file (GStreamer cannot tell what it holds)");
    }
    if err.error().matches(gst::StreamError::WrongType) {
        return format!("{input} is not a video file ({what})");
    }
    let culprit = top_level(reframe, source);
    if culprit.as_ref() == Some(&reframe.outpaint) {
        return format!("m3ddmoutpaint: {what}");
    }
    let branch = reframe.outputs.iter().find_map(|branch| {
        let culprit = culprit.as_ref()?;
        let is_encoder = *culprit == branch.encoder;
        (is_encoder || *culprit == branch.mux || *culprit == branch.sink)
            .then_some((branch, is_encoder))
    });
    match branch {
        Some((branch, true)) => format!(
            "the H.264 encoder of {} failed: {what}",
            branch.path.display()
        ),
        Some((branch, false)) => format!("cannot write {}: {what}", branch.path.display()),
        None => format!(
            "cannot read {input}: {what} (the input has {})",
            reframe.streams.lock().unwrap().found()
        ),
    }
}
