// SPDX-License-Identifier: MPL-2.0
//! The pipeline of one run:
//!
//! ```text
//! filesrc ! parsebin ─ video ─ queue ! decodebin ! videoconvert ! video/x-raw,format=I420 ! deinterlace ! m3ddmoutpaint
//!                    │        m3ddmoutpaint.src   ─ queue ! x264enc ! queue ! mux ! filesink   (first output)
//!                    │        m3ddmoutpaint.src_0 ─ queue ! x264enc ! queue ! mux ! filesink   (second, …)
//!                    ├ audio the muxers take ─ tee ─ queue ! mux   (one queue per output; copied as it is)
//!                    ├ other audio ─ queue ! decodebin ! audioconvert ! audioresample ! avenc_aac ! tee ─ …
//!                    └ anything else ─ fakesink
//! ```
//!
//! The element pushes all its outputs from one thread, so each output branch
//! starts with a queue (one sink waiting for preroll must not hold the others).
//! parsebin demuxes and parses; its pads appear once the streams are known, so
//! the branches are linked from its `pad-added`. What went wrong there (no video
//! stream, a link that fails) is posted as an error message from the pipeline
//! itself, which the bus loop prints as it is.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gst::glib;
use gst::prelude::*;

use crate::cli::Job;
use crate::ending::Gate;
use crate::outputs::{Container, Output, Shape};
use crate::packages;
use crate::streams::{AudioStream, Streams};

/// x264 in constant-quality mode (CRF 20: visually close to the source; x264's own default is 23).
const X264_SETTINGS: &[(&str, &str)] = &[
    ("pass", "qual"),
    ("quantizer", "20"),
    ("speed-preset", "medium"),
];
/// Compressed video the demuxer may run ahead of the element; audio is unbounded
/// (small), so that the demuxer never waits on audio while the muxer waits on video.
const VIDEO_QUEUE_NS: u64 = 10_000_000_000;
/// The AAC encoder for audio that the output container cannot take as it is.
const AUDIO_ENCODER: &str = "avenc_aac";
/// The demuxer's name in the pipeline.
pub const DEMUX_NAME: &str = "demux";
/// The name of the queue that takes the video stream from the demuxer.
pub const VIDEO_QUEUE_NAME: &str = "video-queue";

/// A built pipeline, and the elements the run reports on.
pub struct Reframe {
    pub pipeline: gst::Pipeline,
    pub outpaint: gst::Element,
    pub outputs: Vec<OutputBranch>,
    pub streams: Arc<Mutex<Streams>>,
}

/// The elements that write one output file.
pub struct OutputBranch {
    pub path: PathBuf,
    /// The element's pad the frames come from (`src`, `src_0`, …).
    pub pad: gst::Pad,
    /// Counts the frames out of `pad`, and ends the output early (`ending.rs`).
    pub gate: Arc<Gate>,
    pub encoder: gst::Element,
    pub mux: gst::Element,
    pub sink: gst::Element,
}

/// GStreamer's name of a stream's codec ("H.264 (High Profile)").
fn codec_description(caps: &gst::Caps) -> String {
    if caps.is_any() || caps.is_empty() {
        return "a stream of unknown type".to_string();
    }
    // A parser may not have chosen a stream format yet; the description needs fixed caps.
    let mut fixed = caps.clone();
    fixed.fixate();
    gst_pbutils::pb_utils_get_codec_description(&fixed).to_string()
}

/// Creates an element, or says which package provides it.
fn make(factory: &str, name: Option<&str>) -> Result<gst::Element, String> {
    let mut builder = gst::ElementFactory::make(factory);
    if let Some(name) = name {
        builder = builder.name(name);
    }
    builder
        .build()
        .map_err(|_| packages::missing_element(factory))
}

/// Sets a property of an element or pad from its gst-launch spelling, checked
/// against the spec so that a bad value is a sentence (and not a GLib warning).
fn set_property_from_str(
    object: &impl IsA<gst::Object>,
    name: &str,
    text: &str,
) -> Result<(), String> {
    let object = object.upcast_ref::<gst::Object>();
    let shown = match object.downcast_ref::<gst::Element>() {
        Some(element) => element
            .factory()
            .map(|f| f.name().to_string())
            .unwrap_or_else(|| element.name().to_string()),
        None => object.name().to_string(),
    };
    let pspec = object
        .find_property(name)
        .ok_or_else(|| format!("{shown} has no property {name}"))?;
    let value = glib::Value::deserialize(text, pspec.value_type())
        .ok()
        .filter(|value| pspec.value_is_valid(value))
        .ok_or_else(|| format!("{shown} does not accept {name}={text}"))?;
    object.set_property_from_value(name, &value);
    Ok(())
}

/// A chain of new elements in the pipeline, linked in order.
fn add_chain(pipeline: &gst::Pipeline, elements: &[&gst::Element]) -> Result<(), String> {
    pipeline
        .add_many(elements.iter().copied())
        .map_err(|err| format!("cannot build the pipeline: {err}"))?;
    gst::Element::link_many(elements.iter().copied())
        .map_err(|err| format!("cannot build the pipeline: {err}"))
}

fn unbounded_queue() -> Result<gst::Element, String> {
    let queue = make("queue", None)?;
    queue.set_property("max-size-buffers", 0u32);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property("max-size-time", 0u64);
    Ok(queue)
}

/// Links a muxer request pad (`video_%u`, `audio_%u`) after `upstream`.
fn link_to_muxer(
    upstream: &gst::Element,
    mux: &gst::Element,
    template: &str,
) -> Result<(), String> {
    let pad = mux
        .request_pad_simple(template)
        .ok_or_else(|| format!("the output muxer has no {template} pad"))?;
    upstream
        .static_pad("src")
        .expect("the element has a src pad")
        .link(&pad)
        .map(|_| ())
        .map_err(|err| format!("cannot link a stream to the output muxer: {err:?}"))
}

/// Builds the whole pipeline for `job`, up to the dynamic pads of parsebin.
/// Whether a pipeline writes its outputs, or only runs the element (a pass
/// before the output pass: its frames go to fakesinks, audio is left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outputs {
    Written,
    Discarded,
}

pub fn build(job: &Job, outputs_kind: Outputs) -> Result<Reframe, String> {
    let pipeline = gst::Pipeline::with_name("m3ddm-reframe");
    let source = make("filesrc", Some("input"))?;
    source.set_property("location", utf8(&job.input, "input")?);
    let demux = make("parsebin", Some(DEMUX_NAME))?;
    add_chain(&pipeline, &[&source, &demux])?;

    let (video_head, outpaint) = build_video_chain(&pipeline, job)?;
    let outputs = job
        .outputs
        .iter()
        .enumerate()
        .map(|(index, output)| {
            build_output(
                &pipeline,
                job.container,
                &outpaint,
                (index, outputs_kind),
                output,
            )
        })
        .collect::<Result<Vec<_>, String>>()?;
    let streams = Arc::new(Mutex::new(Streams::default()));
    let linker = Linker {
        pipeline: pipeline.downgrade(),
        muxers: match outputs_kind {
            Outputs::Written => outputs.iter().map(|o| o.mux.clone()).collect(),
            Outputs::Discarded => Vec::new(),
        },
        input: job.input.display().to_string(),
        video_head,
        streams: streams.clone(),
    };
    demux.connect_pad_added(move |_, pad| {
        if let Err(text) = linker.link_stream(pad) {
            linker.fail(&text);
        }
        // parsebin exposes every stream before any data flows: the first
        // buffer tells that the streams are all known.
        let linker = linker.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            linker.check_video_found();
            gst::PadProbeReturn::Remove
        });
    });
    Ok(Reframe {
        pipeline,
        outpaint,
        outputs,
        streams,
    })
}

fn utf8<'a>(path: &'a Path, what: &str) -> Result<&'a str, String> {
    path.to_str()
        .ok_or_else(|| format!("the {what} path {} is not UTF-8", path.display()))
}

/// The video chain from the decoded frames into the element: its head (where
/// decoded frames go in) and the element, with the settings of `job`.
fn build_video_chain(
    pipeline: &gst::Pipeline,
    job: &Job,
) -> Result<(gst::Element, gst::Element), String> {
    let head = make("videoconvert", None)?;
    // 8-bit 4:2:0, which every H.264 player decodes; the element then makes even
    // frame sizes, which x264 needs for 4:2:0.
    let i420 = make("capsfilter", None)?;
    i420.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .build(),
    );
    // The element takes progressive frames only: an interlaced source is
    // deinterlaced (one frame per field); progressive frames pass untouched.
    let deinterlace = make("deinterlace", None)?;
    let outpaint = make("m3ddmoutpaint", Some("outpaint"))?;
    for (name, value) in &job.element_properties {
        set_property_from_str(&outpaint, name, value)?;
    }
    add_chain(pipeline, &[&head, &i420, &deinterlace, &outpaint])?;
    Ok((head, outpaint))
}

/// The branch that encodes and writes output `index`: the first from the
/// element's `src` pad (with the element's `aspect` or `expand`), the others
/// from a request pad `src_%u` with its own `aspect`.
fn build_output(
    pipeline: &gst::Pipeline,
    container: Container,
    outpaint: &gst::Element,
    (index, outputs_kind): (usize, Outputs),
    output: &Output,
) -> Result<OutputBranch, String> {
    let path = &output.path;
    let pad = match (index, &output.shape) {
        (0, Shape::Aspect(aspect)) => {
            set_property_from_str(outpaint, "aspect", &aspect.to_string())?;
            outpaint
                .static_pad("src")
                .expect("the element has a src pad")
        }
        (0, Shape::Expand(margins)) => {
            set_property_from_str(outpaint, "expand", margins)?;
            outpaint
                .static_pad("src")
                .expect("the element has a src pad")
        }
        (_, Shape::Aspect(aspect)) => {
            let pad = outpaint
                .request_pad_simple("src_%u")
                .ok_or("m3ddmoutpaint gives no request pad src_%u: this build of the element has one output only")?;
            set_property_from_str(&pad, "aspect", &aspect.to_string())?;
            pad
        }
        (_, Shape::Expand(_)) => unreachable!("--expand makes one output"),
    };
    let head = make("queue", None)?;
    if outputs_kind == Outputs::Discarded {
        let sink = make("fakesink", Some(&format!("output-{index}")))?;
        sink.set_property("sync", false);
        add_chain(pipeline, &[&head, &sink])?;
        pad.link(&head.static_pad("sink").expect("a queue has a sink pad"))
            .map_err(|err| format!("cannot link the output {}: {err:?}", path.display()))?;
        return Ok(OutputBranch {
            path: path.to_owned(),
            gate: Gate::install(&pad),
            pad,
            encoder: sink.clone(),
            mux: sink.clone(),
            sink,
        });
    }
    let encoder = make("x264enc", Some(&format!("encoder-{index}")))?;
    for (name, value) in X264_SETTINGS {
        set_property_from_str(&encoder, name, value)?;
    }
    let encoded = make("queue", None)?;
    let mux = make(container.muxer(), Some(&format!("mux-{index}")))?;
    let sink = make("filesink", Some(&format!("output-{index}")))?;
    // Written under a temporary name, renamed once complete (main.rs).
    sink.set_property("location", utf8(&output.partial_path(), "output")?);
    add_chain(pipeline, &[&head, &encoder, &encoded])?;
    add_chain(pipeline, &[&mux, &sink])?;
    link_to_muxer(&encoded, &mux, "video_%u")?;
    pad.link(&head.static_pad("sink").expect("a queue has a sink pad"))
        .map_err(|err| format!("cannot link the output {}: {err:?}", path.display()))?;
    Ok(OutputBranch {
        path: path.to_owned(),
        gate: Gate::install(&pad),
        pad,
        encoder,
        mux,
        sink,
    })
}

/// Links the streams parsebin finds (called from its streaming thread).
#[derive(Clone)]
struct Linker {
    pipeline: glib::WeakRef<gst::Pipeline>,
    /// The muxer of every output: each gets every audio stream.
    muxers: Vec<gst::Element>,
    /// The input file, for messages.
    input: String,
    video_head: gst::Element,
    streams: Arc<Mutex<Streams>>,
}

impl Linker {
    /// Posts `text` as an error of the pipeline: the run stops and prints it.
    fn fail(&self, text: &str) {
        if let Some(pipeline) = self.pipeline.upgrade() {
            let message = gst::message::Error::builder(gst::CoreError::Failed, text)
                .src(&pipeline)
                .build();
            let _ = pipeline.post_message(message);
        }
    }

    /// Fails the run when the input turned out to have no video stream.
    fn check_video_found(&self) {
        let streams = self.streams.lock().unwrap();
        if streams.video.is_none() {
            let text = format!(
                "{} has no video stream (it has {})",
                self.input,
                streams.found()
            );
            drop(streams);
            self.fail(&text);
        }
    }

    fn pipeline(&self) -> Result<gst::Pipeline, String> {
        self.pipeline
            .upgrade()
            .ok_or_else(|| "the pipeline is gone".to_string())
    }

    fn link_stream(&self, pad: &gst::Pad) -> Result<(), String> {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let media_type = caps
            .structure(0)
            .map(|s| s.name().to_string())
            .unwrap_or_default();
        let codec = codec_description(&caps);
        let mut streams = self.streams.lock().unwrap();
        if media_type.starts_with("video/") && streams.video.is_none() {
            streams.video = Some(codec);
            drop(streams);
            self.link_video(pad)
        } else if media_type.starts_with("audio/") && !self.muxers.is_empty() {
            let copied = self.mux_accepts_audio(pad);
            streams.audio.push(AudioStream { codec, copied });
            drop(streams);
            if copied {
                self.link_audio_as_is(pad)
            } else {
                self.link_audio_reencoded(pad)
            }
        } else {
            streams.left_out.push(codec);
            drop(streams);
            self.link_to_fakesink(pad)
        }
    }

    /// Adds `elements` to the running pipeline, links them, and `pad` to the first.
    fn add_branch(&self, pad: &gst::Pad, elements: &[&gst::Element]) -> Result<(), String> {
        add_chain(&self.pipeline()?, elements)?;
        for element in elements {
            start(element)?;
        }
        link_pad(pad, elements[0])
    }

    fn link_video(&self, pad: &gst::Pad) -> Result<(), String> {
        let queue = make("queue", Some(VIDEO_QUEUE_NAME))?;
        queue.set_property("max-size-buffers", 0u32);
        queue.set_property("max-size-bytes", 0u32);
        queue.set_property("max-size-time", VIDEO_QUEUE_NS);
        let decoder = make("decodebin", Some("video-decoder"))?;
        let head = self.video_head.clone();
        decoder.connect_pad_added(move |_, pad| {
            let sink = head
                .static_pad("sink")
                .expect("videoconvert has a sink pad");
            if !sink.is_linked() && pad.query_caps(None).can_intersect(&sink.query_caps(None)) {
                let _ = pad.link(&sink);
            }
        });
        self.add_branch(pad, &[&queue, &decoder])
    }

    /// Whether the muxers (all of one container) take this audio stream as it is.
    fn mux_accepts_audio(&self, pad: &gst::Pad) -> bool {
        self.muxers[0]
            .pad_template("audio_%u")
            .is_some_and(|template| pad.query_caps(None).can_intersect(template.caps()))
    }

    /// A tee, started, that feeds an `audio_%u` pad of every muxer through a
    /// queue of its own. The queues are unbounded (audio is small): a muxer
    /// waiting for video must not stop the demuxer, nor the other outputs.
    fn audio_fan_out(&self) -> Result<gst::Element, String> {
        let pipeline = self.pipeline()?;
        let tee = make("tee", None)?;
        pipeline
            .add(&tee)
            .map_err(|err| format!("cannot build the pipeline: {err}"))?;
        for mux in &self.muxers {
            let queue = unbounded_queue()?;
            add_chain(&pipeline, &[&queue])?;
            tee.link(&queue)
                .map_err(|err| format!("cannot build the pipeline: {err}"))?;
            link_to_muxer(&queue, mux, "audio_%u")?;
            start(&queue)?;
        }
        start(&tee)?;
        Ok(tee)
    }

    fn link_audio_as_is(&self, pad: &gst::Pad) -> Result<(), String> {
        let tee = self.audio_fan_out()?;
        link_pad(pad, &tee)
    }

    fn link_audio_reencoded(&self, pad: &gst::Pad) -> Result<(), String> {
        let queue = unbounded_queue()?;
        let decoder = make("decodebin", None)?;
        let convert = make("audioconvert", None)?;
        let resample = make("audioresample", None)?;
        let encoder = make(AUDIO_ENCODER, None)?;
        let tee = self.audio_fan_out()?;
        add_chain(&self.pipeline()?, &[&convert, &resample, &encoder])?;
        encoder
            .link(&tee)
            .map_err(|err| format!("cannot build the pipeline: {err}"))?;
        for element in [&convert, &resample, &encoder] {
            start(element)?;
        }
        decoder.connect_pad_added(move |_, pad| {
            let sink = convert
                .static_pad("sink")
                .expect("audioconvert has a sink pad");
            if !sink.is_linked() {
                let _ = pad.link(&sink);
            }
        });
        self.add_branch(pad, &[&queue, &decoder])
    }

    fn link_to_fakesink(&self, pad: &gst::Pad) -> Result<(), String> {
        let sink = make("fakesink", None)?;
        sink.set_property("sync", false);
        sink.set_property("async", false);
        self.add_branch(pad, &[&sink])
    }
}

/// Brings an element added to the running pipeline to the pipeline's state.
fn start(element: &gst::Element) -> Result<(), String> {
    element
        .sync_state_with_parent()
        .map_err(|_| "cannot start a stream's branch".to_string())
}

/// Links a pad of parsebin to the sink pad of `element`.
fn link_pad(pad: &gst::Pad, element: &gst::Element) -> Result<(), String> {
    let sink = element.static_pad("sink").expect("a sink pad");
    pad.link(&sink)
        .map(|_| ())
        .map_err(|err| format!("cannot link a stream of the input: {err:?}"))
}
