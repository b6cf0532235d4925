// SPDX-License-Identifier: MPL-2.0
//! The RTSP example server (`examples/rtsp_reframe.rs`, which `cargo test`
//! builds) on loopback, serving a live 160×90 15 fps test source reframed to
//! 9:16 with the tiny model (1 step, `max-latency` 1.5 s). Two real clients
//! pull it at once, GStreamer's `rtspsrc` and FFmpeg's `ffmpeg`; each must get
//! 160×284 frames at the source's rate for four seconds (rtspsrc: at least 80 %
//! of the source's frames in four seconds of wall time, after a second to settle; ffmpeg: 60 frames whose
//! timestamps advance at 15 a second, within its 5-s probe and 12 s of wall time). Then the GStreamer
//! client comes back after both left and gets frames again (the shared media
//! is made anew).

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::pipeline_with_appsink;
use gst::prelude::*;

const FPS: f64 = 15.0;
/// 9:16 around the 160-pixel-wide source.
const SIZE: (i32, i32) = (160, 284);
const SECONDS: f64 = 4.0;
/// The first second after a client's first frame (its jitter buffer filling) is not counted.
const SETTLE: f64 = 1.0;

/// The example server, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn example_binary() -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let path = deps
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("examples/rtsp_reframe");
    assert!(
        path.exists(),
        "{} is missing: cargo test builds it (or cargo build --release --examples)",
        path.display()
    );
    path
}

fn start_server() -> Server {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/tiny");
    let mut child = Command::new(example_binary())
        .args(["--port", "0", "--steps", "1", "--lookahead", "16"])
        .args(["--max-latency-ms", "1500", "--provider", "cpu", "--model"])
        .arg(&model)
        .arg("--stream")
        .arg(format!(
            "reframed=9/16=videotestsrc is-live=true pattern=ball \
             ! video/x-raw,width=160,height=90,framerate={}/1",
            FPS as u32
        ))
        .stdout(Stdio::piped())
        .spawn()
        .expect("the example server starts");
    let stdout = child.stdout.take().unwrap();
    let line = BufReader::new(stdout)
        .lines()
        .next()
        .expect("the server prints its URL")
        .unwrap();
    let url = line
        .strip_prefix("serving ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Server { child, url }
}

/// What a GStreamer client got: the frame sizes, and the frames that came in
/// the `SECONDS` after the first `SETTLE` seconds.
struct Pulled {
    sizes: Vec<(i32, i32)>,
    in_window: usize,
}

/// Pulls `url` with rtspsrc for `SETTLE` + `SECONDS` after the first frame.
fn pull_with_rtspsrc(url: &str) -> Pulled {
    gst::init().unwrap();
    let (pipeline, sink) = pipeline_with_appsink(
        &format!(
            "rtspsrc location={url} latency=300 ! rtph264depay ! avdec_h264 ! videoconvert \
             ! appsink name=out sync=false"
        ),
        "out",
    );
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut sizes = Vec::new();
    let mut first: Option<Instant> = None;
    let mut in_window = 0;
    let give_up = Instant::now() + Duration::from_secs(60);
    while Instant::now() < give_up {
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) else {
            break;
        };
        let first = *first.get_or_insert_with(Instant::now);
        let since = first.elapsed().as_secs_f64();
        if since > SETTLE + SECONDS {
            break;
        }
        let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
        sizes.push((info.width() as i32, info.height() as i32));
        if since > SETTLE {
            in_window += 1;
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    Pulled { sizes, in_window }
}

/// Starts ffmpeg on `url` for `SECONDS` of frames at the source's rate,
/// printing each frame (showinfo).
fn start_ffmpeg(url: &str) -> Child {
    let frames = (FPS * SECONDS) as usize;
    Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-rtsp_transport",
            "tcp",
            "-i",
            url,
        ])
        .args([
            "-frames:v",
            &frames.to_string(),
            "-vf",
            "showinfo",
            "-f",
            "null",
            "-",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg runs (Debian's ffmpeg, installed by make deps)")
}

/// The frames ffmpeg decoded: each one's size and presentation time.
fn ffmpeg_frames(child: Child) -> Vec<((i32, i32), f64)> {
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "ffmpeg failed: {log}");
    let field = |line: &str, key: &str| {
        let start = line.find(key)? + key.len();
        let rest = line[start..].trim_start();
        Some(rest.split_whitespace().next()?.to_owned())
    };
    log.lines()
        .filter(|line| line.contains("Parsed_showinfo") && line.contains(" n:"))
        .map(|line| {
            let size = field(line, " s:").expect("the frame size");
            let (w, h) = size.split_once('x').expect("WxH");
            let pts = field(line, "pts_time:").expect("the frame time");
            (
                (w.parse().unwrap(), h.parse().unwrap()),
                pts.parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn two_clients_get_reframed_frames_at_the_source_rate_and_one_comes_back() {
    let server = start_server();
    let started = Instant::now();
    let ffmpeg = start_ffmpeg(&server.url);
    let gstreamer = pull_with_rtspsrc(&server.url);
    let ffmpeg = ffmpeg_frames(ffmpeg);
    let ffmpeg_took = started.elapsed();

    eprintln!(
        "rtspsrc: {} frames in {SECONDS} s; ffmpeg: {} frames",
        gstreamer.in_window,
        ffmpeg.len()
    );
    let expected = (FPS * SECONDS) as usize;
    assert!(
        gstreamer.sizes.iter().all(|s| *s == SIZE),
        "{:?}",
        gstreamer.sizes
    );
    assert!(
        gstreamer.in_window * 10 >= expected * 8,
        "rtspsrc got {} frames in {SECONDS} s, the source sends {expected}",
        gstreamer.in_window
    );
    assert!(ffmpeg.iter().all(|(size, _)| *size == SIZE), "{ffmpeg:?}");
    let times: Vec<f64> = ffmpeg.iter().map(|(_, t)| *t).collect();
    let span = times.last().unwrap() - times.first().unwrap();
    let rate = (times.len() - 1) as f64 / span;
    eprintln!("ffmpeg: {rate:.1} frames per second of stream over {span:.2} s");
    assert!(
        times.len() >= expected && (rate - FPS).abs() < FPS * 0.1,
        "ffmpeg got {} frames, {rate:.1} a second",
        times.len()
    );
    // ffmpeg first probes the stream (up to 5 s by default), then reads its frames.
    assert!(
        ffmpeg_took < Duration::from_secs_f64(5.0 + SECONDS * 3.0),
        "ffmpeg took {ffmpeg_took:?} for {SECONDS} s of frames"
    );

    let again = pull_with_rtspsrc(&server.url);
    eprintln!("rtspsrc again: {} frames", again.in_window);
    assert!(again.sizes.iter().all(|s| *s == SIZE));
    assert!(
        again.in_window * 10 >= expected * 8,
        "the client that came back got {} frames",
        again.in_window
    );
}
