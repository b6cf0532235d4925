// SPDX-License-Identifier: MPL-2.0
//! `reframe`: a video file in, the same video at another aspect ratio out,
//! through `m3ddmoutpaint` (the plugin is registered statically, so no
//! GST_PLUGIN_PATH is needed).
//!
//!     cargo run --release --example reframe -- in.mp4 out.mp4 --aspect 9/16 --model models/tiny --steps 10
//!     cargo run --release --example reframe -- in.mp4 out.mp4 --fill blur

use std::process::ExitCode;
use std::time::Duration;

use gst::prelude::*;

const USAGE: &str = "usage: reframe INPUT OUTPUT [--aspect W/H] [--fill outpaint|blur|color] [--model DIR] \
[--steps N] [--lookahead N] [--provider auto|cuda|cpu] [--inference-server grpc://HOST:PORT,...] \
[--encoder 'GST-LAUNCH FRAGMENT']
  The output is encoded by --encoder, default 'x264enc ! mp4mux'. Outpaint (the default fill) needs --model;
  with --inference-server the model runs on those servers (its manifest must match theirs).";

/// The command line, with the element's properties as name/value strings.
struct Args {
    input: String,
    output: String,
    encoder: String,
    properties: Vec<(&'static str, String)>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut encoder = "x264enc ! mp4mux".to_string();
    let mut properties = Vec::new();
    while let Some(arg) = args.next() {
        let property = match arg.as_str() {
            "--aspect" => "aspect",
            "--fill" => "fill-mode",
            "--model" => "model-path",
            "--steps" => "steps",
            "--lookahead" => "lookahead",
            "--provider" => "execution-provider",
            "--inference-server" => "inference-server",
            "--encoder" => {
                encoder = args.next().ok_or("--encoder needs a value")?;
                continue;
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            flag if flag.starts_with("--") => {
                return Err(format!("unknown option {flag}\n{USAGE}"));
            }
            _ => {
                positional.push(arg);
                continue;
            }
        };
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        properties.push((property, value));
    }
    let [input, output]: [String; 2] = positional.try_into().map_err(|_| USAGE.to_string())?;
    Ok(Args {
        input,
        output,
        encoder,
        properties,
    })
}

fn run(args: Args) -> Result<(), String> {
    gst::init().map_err(|err| format!("cannot initialise GStreamer: {err}"))?;
    gstm3ddm::plugin_register_static()
        .map_err(|err| format!("cannot register the m3ddm plugin: {err}"))?;
    let description = format!(
        "filesrc name=source ! decodebin ! videoconvert ! m3ddmoutpaint name=outpaint ! videoconvert ! {} \
         ! filesink name=sink",
        args.encoder
    );
    let pipeline = gst::parse::launch(&description)
        .map_err(|err| format!("cannot build the pipeline: {err}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "the pipeline description is not a pipeline".to_string())?;
    let by_name = |name: &str| {
        pipeline
            .by_name(name)
            .ok_or_else(|| format!("no element {name}"))
    };
    by_name("source")?.set_property("location", &args.input);
    by_name("sink")?.set_property("location", &args.output);
    let outpaint = by_name("outpaint")?;
    for (name, value) in &args.properties {
        let pspec = outpaint
            .find_property(name)
            .ok_or_else(|| format!("m3ddmoutpaint has no property {name}"))?;
        let value = gst::glib::Value::deserialize(value, pspec.value_type())
            .map_err(|_| format!("{value} is not a valid value for {name}"))?;
        outpaint.set_property_from_value(name, &value);
    }

    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| wait_for_error(&pipeline))?;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let result = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_seconds(5)) else {
            let stats = outpaint.property::<gst::Structure>("stats");
            eprintln!(
                "{} frames in, {} out",
                stats.get::<u64>("frames-in").unwrap_or(0),
                stats.get::<u64>("frames-out").unwrap_or(0)
            );
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(err) => break Err(error_text(err)),
            _ => {}
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    if result.is_ok() {
        let stats = outpaint.property::<gst::Structure>("stats");
        eprintln!("done: {stats}");
    }
    result
}

fn error_text(err: &gst::message::Error) -> String {
    let source = err
        .src()
        .map(|s| s.path_string().to_string())
        .unwrap_or_default();
    match err.debug() {
        Some(debug) => format!("{source}: {} ({debug})", err.error()),
        None => format!("{source}: {}", err.error()),
    }
}

/// The error message a failed state change posted.
fn wait_for_error(pipeline: &gst::Pipeline) -> String {
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let timeout = gst::ClockTime::try_from(Duration::from_secs(1)).unwrap();
    match bus.timed_pop_filtered(timeout, &[gst::MessageType::Error]) {
        Some(msg) => match msg.view() {
            gst::MessageView::Error(err) => error_text(err),
            _ => unreachable!(),
        },
        None => "the pipeline could not start".to_string(),
    }
}

fn main() -> ExitCode {
    let result = parse_args(std::env::args().skip(1)).and_then(run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("reframe: {err}");
            ExitCode::FAILURE
        }
    }
}
