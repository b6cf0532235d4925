// SPDX-License-Identifier: MPL-2.0
//! `make long-file` (minutes; not part of `make test`): a 3000-frame file and a
//! 300-frame file (160×90, canvas 128, the tiny model, 1 step) through both
//! passes of `m3ddm-reframe`. Every frame must come out, and the long file's
//! peak resident memory must stay within 3 % of the short file's: the output
//! pass holds at most ~80 frames whatever the length, and the keyframe pass
//! keeps one frame in 15 at the content size. (3 %, not "no higher": the
//! 300-frame file ends before ONNX Runtime's code pages and the encoder's
//! buffers level off, and the containers' sample tables grow with the length;
//! README "Long files" has the measurements.)

// Only some of the shared media helpers are used here.
#[allow(dead_code)]
mod media;

use std::path::{Path, PathBuf};
use std::process::Command;

use media::{REFRAME, decode, make_mp4};
/// Runs a command and prints the peak resident set size of its children (kB),
/// as the kernel counts it (`getrusage(RUSAGE_CHILDREN).ru_maxrss`).
const PEAK_RSS: &str = "import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print('peak-rss-kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(code)";

fn dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("long_file");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Reframes a `frames`-frame file in both passes; its peak RSS in kB.
fn peak_rss_of(frames: u64) -> u64 {
    let input = dir().join(format!("in-{frames}.mp4"));
    let output = dir().join(format!("out-{frames}.mp4"));
    make_mp4(&input, frames, false);
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny");
    let run = Command::new("python3")
        .args(["-c", PEAK_RSS, REFRAME])
        .args([&input, &output])
        .args(["--aspect", "9/16", "--steps", "1", "--model"])
        .arg(&model)
        .output()
        .expect("python3 runs m3ddm-reframe");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("pass 2 of 2"), "{stderr}");
    assert_eq!(decode(&output).video_frames, frames, "frames out");
    let rss = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kb "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the peak RSS line");
    eprintln!("{frames} frames: peak RSS {rss} kB");
    rss
}

/// How much higher the long file's peak may be, in percent of the short one's.
const PEAK_MARGIN_PERCENT: u64 = 3;

#[test]
#[ignore = "minutes: run by make long-file"]
fn a_long_file_runs_in_the_memory_of_a_short_one() {
    let short = peak_rss_of(300);
    let long = peak_rss_of(3000);
    eprintln!(
        "3000 / 300 frames: {:.2} % higher",
        (long as f64 / short as f64 - 1.0) * 100.0
    );
    assert!(
        long * 100 <= short * (100 + PEAK_MARGIN_PERCENT),
        "3000 frames peaked at {long} kB, more than {PEAK_MARGIN_PERCENT} % above 300 frames' {short} kB"
    );
}
