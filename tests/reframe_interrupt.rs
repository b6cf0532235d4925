// SPDX-License-Identifier: MPL-2.0
//! Ctrl-C on `m3ddm-reframe`: interrupted once while it writes, the output is
//! finished under its own name with the frames done so far (it decodes to
//! exactly the frame count the tool reports, with its audio, and
//! gst-discoverer reads it); interrupted twice, it stops at once and leaves
//! nothing, neither under the output's name nor under its temporary one.

// Only some of the shared media helpers are used here.
#[allow(dead_code)]
mod media;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use media::{decode, make_mp4};

const REFRAME: &str = env!("CARGO_BIN_EXE_m3ddm-reframe");
/// 50 s at 30 fps: a blur run takes seconds, time enough to interrupt it.
const FRAMES: u64 = 1500;
const TIMEOUT: Duration = Duration::from_secs(120);

/// A fresh directory with the input clip.
fn scratch_with_input(tag: &str) -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("reframe_interrupt")
        .join(tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.mp4");
    make_mp4(&input, FRAMES, true);
    (dir, input)
}

/// Starts a blur run from `input` to `output`.
fn start(input: &Path, output: &Path) -> Child {
    Command::new(REFRAME)
        .arg(input)
        .arg(output)
        .args(["--fill", "blur"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("m3ddm-reframe starts")
}

/// Waits until the run has written `bytes` of its output under the temporary name.
fn wait_for_writing(child: &mut Child, output: &Path, bytes: u64) {
    let name = output.file_name().unwrap().to_str().unwrap();
    let partial = output.with_file_name(format!(".{name}.{}.part", child.id()));
    let started = Instant::now();
    loop {
        let written = std::fs::metadata(&partial).map_or(0, |m| m.len());
        if written >= bytes {
            assert!(
                !output.exists(),
                "the output's name is taken before it is complete"
            );
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "m3ddm-reframe ended before it wrote {bytes} bytes"
        );
        assert!(
            started.elapsed() < TIMEOUT,
            "{} stays under {bytes} bytes",
            partial.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

/// Waits for the run to end: its exit code and what it printed.
fn finish(mut child: Child) -> (Option<i32>, String) {
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            child.kill().unwrap();
            panic!("m3ddm-reframe did not end within {TIMEOUT:?} of the interrupt");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = reader.join().unwrap();
    eprintln!("m3ddm-reframe: {status}\n{stderr}");
    (status.code(), stderr)
}

/// The files of `dir` other than the input.
fn left_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "in.mp4")
        .collect();
    names.sort();
    names
}

#[test]
fn one_interrupt_finishes_the_output_with_the_frames_done() {
    let (dir, input) = scratch_with_input("once");
    let output = dir.join("out.mp4");
    let mut child = start(&input, &output);
    wait_for_writing(&mut child, &output, 64 * 1024);
    signal(&child, libc::SIGINT);
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(130), "an interrupted run exits with 130");
    assert!(
        stderr.contains("interrupted: finishing the output with the frames done so far"),
        "{stderr}"
    );
    let done: u64 = stderr
        .split_once("interrupted: wrote ")
        .and_then(|(_, rest)| rest.split_once(" with the "))
        .and_then(|(_, rest)| rest.split_once(" frames done"))
        .and_then(|(count, _)| count.parse().ok())
        .unwrap_or_else(|| panic!("no frame count in: {stderr}"));
    assert!(0 < done && done < FRAMES, "{done} frames done of {FRAMES}");
    assert_eq!(left_in(&dir), ["out.mp4"], "only the output is left");
    let decoded = decode(&output);
    assert_eq!(
        decoded.video_frames, done,
        "the output holds the frames done"
    );
    assert!(decoded.audio.is_some(), "the output has its audio");
    let discovered = Command::new("gst-discoverer-1.0")
        .arg(&output)
        .output()
        .expect("gst-discoverer-1.0 runs (gstreamer1.0-plugins-base-apps)");
    let report = String::from_utf8_lossy(&discovered.stdout);
    assert!(
        discovered.status.success() && report.contains("video #") && report.contains("H.264"),
        "gst-discoverer-1.0 cannot read the output: {report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_interrupts_stop_at_once_and_leave_no_file() {
    let (dir, input) = scratch_with_input("twice");
    let output = dir.join("out.mp4");
    let mut child = start(&input, &output);
    wait_for_writing(&mut child, &output, 64 * 1024);
    // Two signals of two kinds: both are delivered (one kind pending twice is one).
    signal(&child, libc::SIGINT);
    signal(&child, libc::SIGTERM);
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(130), "a stopped run exits with 130");
    assert!(stderr.contains("stopped at once"), "{stderr}");
    assert!(left_in(&dir).is_empty(), "files left: {:?}", left_in(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}
