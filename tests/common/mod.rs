// SPDX-License-Identifier: MPL-2.0
//! Helpers shared by the element's tests: plugin registration, patterned input
//! frames, running a stream through a Harness, and checking that the source's
//! pixels reach the output bit-exact.

#![allow(dead_code)]

pub mod errors;
pub mod models;
pub mod outputs;
pub mod samples;

#[allow(unused_imports)]
pub use errors::{caps_error, error_of, ready_error, refused_at_ready};
#[allow(unused_imports)]
pub use models::{edit_manifest, model_copy, model_with_vae_as_unet, run_fixture};

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_video::prelude::*;

pub const FRAME_NS: u64 = 33_333_333;

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstm3ddm::plugin_register_static().expect("the m3ddm plugin registers");
    });
}

/// The bundled canvas-128 tiny model.
pub fn tiny_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/tiny")
}

pub fn video_info(format: &str, width: u32, height: u32) -> gst_video::VideoInfo {
    gst_video::VideoInfo::builder(gst_video::VideoFormat::from_string(format), width, height)
        .fps(gst::Fraction::new(30, 1))
        .build()
        .unwrap()
}

/// Input frame `index`: every byte of every plane a function of its place and
/// of `index` (in 10- and 12-bit formats every 16-bit sample held to its
/// depth, so that each value is a legal one); PTS `index` frames at 30 fps,
/// DISCONT on the first and DELTA_UNIT on odd ones (to check that flags travel).
pub fn make_frame(info: &gst_video::VideoInfo, index: u64, pts_offset: u64) -> gst::Buffer {
    let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
    {
        let buffer = buffer.get_mut().unwrap();
        buffer.set_pts(gst::ClockTime::from_nseconds(pts_offset + index * FRAME_NS));
        buffer.set_duration(gst::ClockTime::from_nseconds(FRAME_NS));
        if index == 0 {
            buffer.set_flags(gst::BufferFlags::DISCONT);
        }
        if index % 2 == 1 {
            buffer.set_flags(gst::BufferFlags::DELTA_UNIT);
        }
    }
    let mut frame = gst_video::VideoFrame::from_buffer_writable(buffer, info).unwrap();
    for plane in 0..frame.n_planes() {
        let stride = frame.plane_stride()[plane as usize] as usize;
        let data = frame.plane_data_mut(plane).unwrap();
        for (y, row) in data.chunks_mut(stride).enumerate() {
            for (x, byte) in row.iter_mut().enumerate() {
                let v = (x as u64 * 31)
                    ^ (y as u64 * 17 + 5)
                    ^ (index * 13)
                    ^ (plane as u64 * 101)
                    ^ ((x * y) as u64 % 7);
                *byte = (v % 251) as u8;
            }
        }
        hold_to_depth(info, plane, data);
    }
    frame.into_buffer()
}

/// Masks the 16-bit samples of `plane` to the format's depth, at its shift
/// (the top bits of I420_10LE zero, the low bits of P010_10LE zero).
fn hold_to_depth(info: &gst_video::VideoInfo, plane: u32, data: &mut [u8]) {
    let finfo = info.format_info();
    let Some(c) = (0..finfo.n_components() as usize).find(|&c| finfo.plane()[c] == plane) else {
        return;
    };
    let (depth, shift) = (finfo.depth()[c], finfo.shift()[c]);
    if depth <= 8 || finfo.pixel_stride()[c] == 0 {
        return;
    }
    for word in data.chunks_exact_mut(2) {
        let value = (u16::from_le_bytes([word[0], word[1]]) & ((1 << depth) - 1)) << shift;
        word.copy_from_slice(&value.to_le_bytes());
    }
}

/// Bytes per pixel, horizontal and vertical subsampling of each plane.
fn plane_layout(info: &gst_video::VideoInfo, plane: u32) -> (usize, u32, u32) {
    let finfo = info.format_info();
    let component = (0..finfo.n_components() as usize)
        .find(|&c| finfo.plane()[c] == plane)
        .unwrap();
    (
        finfo.pixel_stride()[component] as usize,
        finfo.w_sub()[component],
        finfo.h_sub()[component],
    )
}

fn plane_rows<'a>(
    frame: &'a gst_video::VideoFrameRef<&gst::BufferRef>,
    plane: u32,
) -> (&'a [u8], usize) {
    (
        frame.plane_data(plane).unwrap(),
        frame.plane_stride()[plane as usize] as usize,
    )
}

/// A format whose pixels have no byte place of their own (v210's groups of
/// six): compared through its unpacked samples.
fn has_pixel_groups(info: &gst_video::VideoInfo) -> bool {
    info.format_info().pixel_stride()[0] == 0
}

/// Where (in pixels of plane 0) the source lies in the output, if anywhere.
pub fn locate_source(
    in_info: &gst_video::VideoInfo,
    input: &gst::BufferRef,
    out_info: &gst_video::VideoInfo,
    output: &gst::BufferRef,
) -> Option<(u32, u32)> {
    if has_pixel_groups(in_info) {
        return samples::Unpacked::of(out_info, output)
            .find(&samples::Unpacked::of(in_info, input));
    }
    let src = gst_video::VideoFrameRef::from_buffer_ref_readable(input, in_info).unwrap();
    let out = gst_video::VideoFrameRef::from_buffer_ref_readable(output, out_info).unwrap();
    let (bpp, _, _) = plane_layout(in_info, 0);
    let (src_data, src_stride) = plane_rows(&src, 0);
    let (out_data, out_stride) = plane_rows(&out, 0);
    let row_bytes = in_info.width() as usize * bpp;
    for y0 in 0..=out_info.height().checked_sub(in_info.height())? {
        for x0 in 0..=out_info.width().checked_sub(in_info.width())? {
            let matches = (0..in_info.height() as usize).all(|row| {
                let o = (y0 as usize + row) * out_stride + x0 as usize * bpp;
                out_data[o..o + row_bytes]
                    == src_data[row * src_stride..row * src_stride + row_bytes]
            });
            if matches {
                return Some((x0, y0));
            }
        }
    }
    None
}

/// True when every plane of the source is in the output at `at`, byte for byte.
pub fn source_is_exact(
    in_info: &gst_video::VideoInfo,
    input: &gst::BufferRef,
    out_info: &gst_video::VideoInfo,
    output: &gst::BufferRef,
    at: (u32, u32),
) -> bool {
    if has_pixel_groups(in_info) {
        return samples::Unpacked::of(out_info, output)
            .holds(&samples::Unpacked::of(in_info, input), at);
    }
    let src = gst_video::VideoFrameRef::from_buffer_ref_readable(input, in_info).unwrap();
    let out = gst_video::VideoFrameRef::from_buffer_ref_readable(output, out_info).unwrap();
    (0..in_info.n_planes()).all(|plane| {
        let (bpp, w_sub, h_sub) = plane_layout(in_info, plane);
        let width = in_info.width().div_ceil(1 << w_sub) as usize;
        let height = in_info.height().div_ceil(1 << h_sub) as usize;
        let (x0, y0) = ((at.0 >> w_sub) as usize, (at.1 >> h_sub) as usize);
        let (src_data, src_stride) = plane_rows(&src, plane);
        let (out_data, out_stride) = plane_rows(&out, plane);
        (0..height).all(|row| {
            let o = (y0 + row) * out_stride + x0 * bpp;
            out_data[o..o + width * bpp]
                == src_data[row * src_stride..row * src_stride + width * bpp]
        })
    })
}

/// A new `m3ddmoutpaint` with these properties (as strings).
pub fn element(properties: &[(&str, &str)]) -> gst::Element {
    init();
    let element = gst::ElementFactory::make("m3ddmoutpaint").build().unwrap();
    for (name, value) in properties {
        element.set_property_from_str(name, value);
    }
    element
}

/// A harness around a new `m3ddmoutpaint` with these properties; the harness
/// sets it PLAYING at once, so the properties are set before.
pub fn harness(properties: &[(&str, &str)]) -> gst_check::Harness {
    gst_check::Harness::with_element(&element(properties), Some("sink"), Some("src"))
}

/// Properties of outpaint mode with the tiny model and few steps.
pub fn outpaint_properties(lookahead: u32) -> Vec<(&'static str, String)> {
    vec![
        ("fill-mode", "outpaint".to_string()),
        ("model-path", tiny_model().display().to_string()),
        ("steps", "2".to_string()),
        ("execution-provider", "cpu".to_string()),
        ("lookahead", lookahead.to_string()),
    ]
}

pub fn as_refs<'a>(properties: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    properties
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

/// The next output buffer, waiting at most `timeout` (the harness's own pull gives up after 60 s).
pub fn pull_within(h: &mut gst_check::Harness, timeout: Duration) -> Option<gst::Buffer> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(buffer) = h.try_pull() {
            return Some(buffer);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The events until (and with) EOS, waiting at most `timeout`.
pub fn events_until_eos(h: &mut gst_check::Harness, timeout: Duration) -> Vec<gst::Event> {
    let deadline = Instant::now() + timeout;
    let mut events = Vec::new();
    loop {
        match h.try_pull_event() {
            Some(event) => {
                let eos = event.type_() == gst::EventType::Eos;
                events.push(event);
                if eos {
                    return events;
                }
            }
            None if Instant::now() > deadline => {
                panic!("no EOS within {timeout:?}; events so far: {events:?}")
            }
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// What a stream through the element gave.
pub struct StreamRun {
    pub in_info: gst_video::VideoInfo,
    pub inputs: Vec<gst::Buffer>,
    pub outputs: Vec<gst::Buffer>,
    pub out_info: gst_video::VideoInfo,
    pub elapsed: Duration,
    /// The element's `stats` at the end of the stream.
    pub stats: gst::Structure,
}

/// Pushes `frames` patterned frames of `format` `width`×`height` and EOS, and
/// collects every output buffer (then checks that EOS follows and nothing more).
pub fn run_stream(
    properties: &[(&str, &str)],
    format: &str,
    width: u32,
    height: u32,
    frames: u64,
) -> StreamRun {
    init();
    let in_info = video_info(format, width, height);
    let inputs: Vec<gst::Buffer> = (0..frames).map(|i| make_frame(&in_info, i, 0)).collect();
    run_buffers(properties, in_info, inputs)
}

/// Pushes `inputs` (frames of `in_info`) and EOS, and collects every output
/// buffer (then checks that EOS follows and nothing more).
pub fn run_buffers(
    properties: &[(&str, &str)],
    in_info: gst_video::VideoInfo,
    inputs: Vec<gst::Buffer>,
) -> StreamRun {
    let started = Instant::now();
    let frames = inputs.len();
    let mut h = harness(properties);
    h.play();
    h.set_src_caps(in_info.to_caps().unwrap());
    for buffer in &inputs {
        assert_eq!(h.push(buffer.clone()), Ok(gst::FlowSuccess::Ok));
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let outputs: Vec<gst::Buffer> = (0..frames)
        .map(|i| {
            pull_within(&mut h, Duration::from_secs(900))
                .unwrap_or_else(|| panic!("output frame {i} of {frames}"))
        })
        .collect();
    events_until_eos(&mut h, Duration::from_secs(60));
    assert!(h.try_pull().is_none(), "more frames out than in");
    let out_caps = h.sinkpad().unwrap().current_caps().expect("output caps");
    let out_info = gst_video::VideoInfo::from_caps(&out_caps).unwrap();
    let stats = h.element().unwrap().property::<gst::Structure>("stats");
    StreamRun {
        in_info,
        inputs,
        outputs,
        out_info,
        elapsed: started.elapsed(),
        stats,
    }
}

/// Two runs gave the same frames, byte for byte.
pub fn assert_same_frames(got: &[gst::Buffer], expected: &[gst::Buffer]) {
    assert_eq!(got.len(), expected.len());
    for (k, (a, b)) in got.iter().zip(expected).enumerate() {
        let (a, b) = (a.map_readable().unwrap(), b.map_readable().unwrap());
        assert!(a.as_slice() == b.as_slice(), "frame {k} differs");
    }
}

/// Every output: the input's PTS, duration and flags in order, the source
/// bit-exact at one place for all frames, and the output at `aspect` (display).
pub fn check_stream(run: &StreamRun, aspect: (u32, u32)) {
    assert_eq!(run.outputs.len(), run.inputs.len());
    for (i, (input, output)) in run.inputs.iter().zip(&run.outputs).enumerate() {
        assert_eq!(output.pts(), input.pts(), "PTS of frame {i}");
        assert_eq!(output.duration(), input.duration(), "duration of frame {i}");
        assert_eq!(output.flags(), input.flags(), "flags of frame {i}");
    }
    let (in_info, out_info) = (&run.in_info, &run.out_info);
    assert_eq!(out_info.format(), in_info.format());
    assert_eq!(out_info.fps(), in_info.fps());
    assert_eq!(out_info.par(), in_info.par());
    let par = out_info.par();
    let display = out_info.width() as f64 * par.numer() as f64
        / (out_info.height() as f64 * par.denom() as f64);
    let wanted = aspect.0 as f64 / aspect.1 as f64;
    // The output grows by whole (aligned) pixels, so its ratio is within 2 pixels of the target.
    let tolerance = 2.0 * wanted / out_info.height().min(out_info.width()) as f64
        + 2.0 / out_info.height() as f64;
    assert!(
        (display - wanted).abs() <= tolerance,
        "output {}x{} is not at {}:{}",
        out_info.width(),
        out_info.height(),
        aspect.0,
        aspect.1
    );
    assert!(out_info.width() >= in_info.width() && out_info.height() >= in_info.height());

    let at = locate_source(in_info, &run.inputs[0], out_info, &run.outputs[0])
        .expect("the source in the first output frame");
    for (i, (input, output)) in run.inputs.iter().zip(&run.outputs).enumerate() {
        assert!(
            source_is_exact(in_info, input, out_info, output, at),
            "source pixels of frame {i} changed"
        );
    }
}

/// Records what leaves the element's src pad, in order.
pub fn record_src(h: &gst_check::Harness) -> Arc<Mutex<Vec<String>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let srcpad = h.element().unwrap().static_pad("src").unwrap();
    let sink_log = log.clone();
    srcpad.add_probe(gst::PadProbeType::DATA_DOWNSTREAM, move |_, info| {
        let entry = match &info.data {
            Some(gst::PadProbeData::Buffer(buffer)) => {
                format!("buffer {}", buffer.pts().unwrap().nseconds() / FRAME_NS)
            }
            Some(gst::PadProbeData::Event(event)) => format!("event {:?}", event.type_()),
            _ => return gst::PadProbeReturn::Ok,
        };
        sink_log.lock().unwrap().push(entry);
        gst::PadProbeReturn::Ok
    });
    log
}

/// Threads of this process.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// `description` parsed as a pipeline (still in NULL), and its appsink named `sink_name`.
pub fn pipeline_with_appsink(
    description: &str,
    sink_name: &str,
) -> (gst::Pipeline, gst_app::AppSink) {
    let pipeline = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name(sink_name)
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    (pipeline, sink)
}

/// One run of `videotestsrc ! m3ddmoutpaint ! fakesink` to EOS, then NULL.
pub fn pipeline_cycle(element_args: &str, frames: u32) -> gst::glib::WeakRef<gst::Element> {
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={frames} ! video/x-raw,format=I420,width=64,height=36,framerate=30/1 \
         ! m3ddmoutpaint name=m {element_args} ! fakesink sync=false"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let element = pipeline.by_name("m").unwrap();
    let weak = element.downgrade();
    drop(element);
    let bus = pipeline.bus().unwrap();
    if pipeline.set_state(gst::State::Playing).is_err() {
        let msg = bus.pop_filtered(&[gst::MessageType::Error]);
        panic!("the pipeline did not start: {msg:?}");
    }
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(120),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS within 120 s");
    if let gst::MessageView::Error(err) = msg.view() {
        panic!("pipeline error: {err:?}");
    }
    pipeline.set_state(gst::State::Null).unwrap();
    weak
}

/// True once the element is freed; its task thread lets go of it a moment after the join.
pub fn released(weak: &gst::glib::WeakRef<gst::Element>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while weak.upgrade().is_some() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}
