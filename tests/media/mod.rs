// SPDX-License-Identifier: MPL-2.0
//! Media files for the tests of `m3ddm-reframe`: MP4s made with GStreamer's own
//! encoders (x264enc, avenc_aac), what a file decodes to (frames, frame size,
//! audio duration, container, interlaced frames), and a run of the tool.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_video::prelude::*;

/// The frame rate of the files made here.
pub const FPS: u64 = 30;
pub const REFRAME: &str = env!("CARGO_BIN_EXE_m3ddm-reframe");
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// A fresh directory for one test's files, under the suite's.
pub fn scratch(suite: &str, tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(suite).join(tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The output of a run of `m3ddm-reframe`.
pub struct Run {
    pub success: bool,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs `m3ddm-reframe` with `args` (and extra environment), killing it after `RUN_TIMEOUT`.
pub fn reframe(args: &[&str], env: &[(&str, &str)]) -> Run {
    let started = Instant::now();
    let mut child = Command::new(REFRAME)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("m3ddm-reframe starts");
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > RUN_TIMEOUT {
            child.kill().unwrap();
            panic!("m3ddm-reframe {args:?} ran past {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let run = Run {
        success: status.success(),
        stderr: reader.join().unwrap(),
        elapsed: started.elapsed(),
    };
    eprintln!("m3ddm-reframe {args:?}: {:?}\n{}", run.elapsed, run.stderr);
    run
}

/// Runs a gst-launch description to EOS; an error message is the Err.
pub fn play(description: &str) -> Result<(), String> {
    play_prepared(description, |_| {})
}

/// Runs a gst-launch description to EOS after `prepare` saw the pipeline.
pub fn play_prepared(description: &str, prepare: impl FnOnce(&gst::Bin)) -> Result<(), String> {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(description).map_err(|e| e.to_string())?;
    prepare(pipeline.downcast_ref::<gst::Bin>().unwrap());
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| e.to_string())?;
    let bus = pipeline.bus().unwrap();
    let result = match bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(60),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    ) {
        Some(msg) => match msg.view() {
            gst::MessageView::Error(err) => Err(err.error().to_string()),
            _ => Ok(()),
        },
        None => Err("no EOS within 60 s".to_string()),
    };
    pipeline.set_state(gst::State::Null).unwrap();
    result
}

/// An MP4 with `frames` frames of 160×90 H.264 (x264enc) at 30 fps and, when
/// `audio`, a stereo AAC tone (avenc_aac) of the same duration.
pub fn make_mp4(path: &Path, frames: u64, audio: bool) {
    make_mp4_with_cut(path, frames, audio, None);
}

/// The same, and with `cut_at`, a cut to another picture (SMPTE colour bars)
/// from that frame on.
pub fn make_mp4_with_cut(path: &Path, frames: u64, audio: bool, cut_at: Option<u64>) {
    let location = path.display();
    let video = format!(
        "videotestsrc name=video num-buffers={frames} pattern=ball \
         ! video/x-raw,width=160,height=90,framerate={FPS}/1,format=I420 \
         ! x264enc ! queue ! mp4mux name=mux ! filesink location={location}"
    );
    let tone = format!(
        " audiotestsrc num-buffers={frames} samplesperbuffer={} ! audio/x-raw,rate=44100,channels=2 \
         ! avenc_aac ! queue ! mux.",
        44_100 / FPS
    );
    let description = if audio { video + &tone } else { video };
    let cut = |pipeline: &gst::Bin| {
        let Some(cut_at) = cut_at else { return };
        let source = pipeline.by_name("video").unwrap();
        let pad = source.static_pad("src").unwrap();
        let source = source.downgrade();
        let pushed = AtomicU64::new(0);
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let pushed = pushed.fetch_add(1, Ordering::Relaxed) + 1;
            if let (true, Some(source)) = (pushed == cut_at, source.upgrade()) {
                source.set_property_from_str("pattern", "smpte");
            }
            gst::PadProbeReturn::Ok
        });
    };
    play_prepared(&description, cut).expect("GStreamer's encoders make the test file");
}

/// An audio-only MP4 (AAC).
pub fn make_audio_only_mp4(path: &Path) {
    play(&format!(
        "audiotestsrc num-buffers=20 ! avenc_aac ! mp4mux ! filesink location={}",
        path.display()
    ))
    .expect("GStreamer's encoders make the audio file");
}

/// What a file decodes to.
#[derive(Debug, Default, Clone)]
pub struct Decoded {
    pub video_frames: u64,
    pub width: i32,
    pub height: i32,
    /// Decoded samples / rate, summed over the audio buffers.
    pub audio: Option<Duration>,
    pub container: String,
    /// Video frames whose caps say they are interlaced.
    pub interlaced_frames: u64,
}

/// Decodes every stream of `path` (decodebin) and counts what comes out.
pub fn decode(path: &Path) -> Decoded {
    gst::init().unwrap();
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc")
        .property("location", path.to_str().unwrap())
        .build()
        .unwrap();
    let decodebin = gst::ElementFactory::make("decodebin").build().unwrap();
    pipeline.add_many([&src, &decodebin]).unwrap();
    src.link(&decodebin).unwrap();
    let decoded = Arc::new(Mutex::new(Decoded::default()));
    let weak = pipeline.downgrade();
    let counts = decoded.clone();
    decodebin.connect_pad_added(move |_, pad| {
        let pipeline = weak.upgrade().unwrap();
        let sink = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .build()
            .unwrap();
        pipeline.add(&sink).unwrap();
        sink.sync_state_with_parent().unwrap();
        pad.link(&sink.static_pad("sink").unwrap()).unwrap();
        let counts = counts.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let caps = pad.current_caps().unwrap();
            let s = caps.structure(0).unwrap();
            let mut counts = counts.lock().unwrap();
            if s.name().starts_with("video/") {
                counts.video_frames += 1;
                counts.width = s.get("width").unwrap();
                counts.height = s.get("height").unwrap();
                if s.get::<&str>("interlace-mode")
                    .is_ok_and(|mode| mode != "progressive")
                {
                    counts.interlaced_frames += 1;
                }
            } else if let (Some(buffer), Ok(audio)) =
                (info.buffer(), gst_audio::AudioInfo::from_caps(&caps))
            {
                let samples = buffer.size() as u64 / u64::from(audio.bpf());
                let duration =
                    Duration::from_nanos(samples * 1_000_000_000 / u64::from(audio.rate()));
                *counts.audio.get_or_insert(Duration::ZERO) += duration;
            }
            gst::PadProbeReturn::Ok
        });
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let mut container = String::new();
    loop {
        let msg = bus
            .timed_pop(gst::ClockTime::from_seconds(60))
            .expect("decoding ends within 60 s");
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(err) => {
                panic!("{} does not decode: {}", path.display(), err.error())
            }
            gst::MessageView::Tag(tag) => {
                if let Some(format) = tag.tags().get::<gst::tags::ContainerFormat>() {
                    container = format.get().to_string();
                }
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let mut decoded = decoded.lock().unwrap().clone();
    decoded.container = container;
    decoded
}

/// A 160×96 H.264 MP4 of `frames` black frames with a red 32×32 marker in the
/// stored frame's top-left corner, its video track's matrix turned by
/// `degrees` (90, 180 or 270) clockwise, as a phone writes it; qtdemux reads
/// it back as an `image-orientation` tag. (mp4mux of GStreamer 1.22 does not
/// write that matrix from a tag, so the matrix is written into the file's
/// track header here.)
pub fn make_rotated_mp4(path: &Path, frames: u64, degrees: u32) {
    play(&format!(
        "compositor name=c background=black \
         ! video/x-raw,width=160,height=96,format=I420,framerate={FPS}/1 \
         ! x264enc ! mp4mux ! filesink location={} \
         videotestsrc pattern=black num-buffers={frames} \
         ! video/x-raw,width=160,height=96,framerate={FPS}/1 ! c.sink_0 \
         videotestsrc pattern=red num-buffers={frames} \
         ! video/x-raw,width=32,height=32,framerate={FPS}/1 ! c.sink_1",
        path.display()
    ))
    .expect("GStreamer's encoders make the file to rotate");
    // The matrix's a, b, c, d in 16.16 fixed point (ISO/IEC 14496-12 tkhd).
    let one = 0x0001_0000u32;
    let minus_one = 0xffff_0000u32;
    let (a, b, c, d) = match degrees {
        90 => (0, one, minus_one, 0),
        180 => (minus_one, 0, 0, minus_one),
        270 => (0, minus_one, one, 0),
        _ => panic!("rotation by {degrees} degrees"),
    };
    let mut bytes = std::fs::read(path).unwrap();
    let tkhd = bytes
        .windows(4)
        .position(|w| w == b"tkhd")
        .expect("the file has a track header");
    assert_eq!(bytes[tkhd + 4], 0, "a version 0 track header");
    // After the type: version and flags (4), creation and modification times,
    // track id, reserved, duration (20), reserved (8), layer, alternate group,
    // volume, reserved (8): the matrix.
    let matrix = tkhd + 4 + 40;
    for (k, value) in [a, b, 0, c, d].into_iter().enumerate() {
        bytes[matrix + 4 * k..matrix + 4 * k + 4].copy_from_slice(&value.to_be_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// The image orientation a file's demuxer reports, if any.
pub fn orientation_of(path: &Path) -> Option<String> {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! qtdemux ! fakesink",
        path.display()
    ))
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let mut orientation = None;
    while let Some(msg) = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(30),
        &[
            gst::MessageType::Tag,
            gst::MessageType::Eos,
            gst::MessageType::Error,
        ],
    ) {
        match msg.view() {
            gst::MessageView::Tag(tag) => {
                if let Some(value) = tag.tags().get::<gst::tags::ImageOrientation>() {
                    orientation = Some(value.get().to_string());
                }
            }
            _ => break,
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    orientation
}

/// The first video frame of a file, decoded to packed RGB: width, height, bytes.
pub fn first_rgb_frame(path: &Path) -> (u32, u32, Vec<u8>) {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=RGB \
         ! appsink name=sink sync=false",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Bin>()
    .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let sample = sink
        .try_pull_preroll(gst::ClockTime::from_seconds(30))
        .expect("a decoded frame");
    pipeline.set_state(gst::State::Null).unwrap();
    let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(sample.buffer().unwrap(), &info)
        .unwrap();
    let stride = frame.plane_stride()[0] as usize;
    let row = info.width() as usize * 3;
    let data = frame.plane_data(0).unwrap();
    let pixels = data
        .chunks(stride)
        .take(info.height() as usize)
        .flat_map(|line| line[..row].to_vec())
        .collect();
    (info.width(), info.height(), pixels)
}
