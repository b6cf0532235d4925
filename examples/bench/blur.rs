// SPDX-License-Identifier: MPL-2.0
//! The blur section: `fill-mode=blur` on 300 frames of 1920×1080 I420 to 9:16
//! at the source's scale (1920×3414), beside FFmpeg's blur-pad graph (`split`,
//! `scale`, `boxblur=20:5`, `overlay`) and `videobox` padding the same frames
//! with black (the cost of a plain copy). All three read the same raw file
//! (from the page cache after the first run), interleaved, twice each.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::support::{BenchResult, project};

const FRAMES: u32 = 300;
/// (3414 − 1080) / 2: the band above and below the source at 9:16.
const PAD: u32 = 1167;

fn raw_input() -> Result<PathBuf, String> {
    let path = project().join(".cache/bench/blur-1920x1080-i420.yuv");
    let size = 1920 * 1080 * 3 / 2 * FRAMES as u64;
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == size) {
        return Ok(path);
    }
    std::fs::create_dir_all(path.parent().expect("in .cache")).map_err(|e| e.to_string())?;
    gst_launch(&format!(
        "videotestsrc num-buffers={FRAMES} pattern=ball ! video/x-raw,format=I420,width=1920,height=1080,framerate=30/1 \
         ! filesink location={}",
        path.display()
    ))?;
    Ok(path)
}

fn gst_launch(description: &str) -> Result<f64, String> {
    let started = Instant::now();
    let output = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(description.split_whitespace())
        .env("GST_PLUGIN_PATH", project().join("target/release"))
        .output()
        .map_err(|e| format!("cannot run gst-launch-1.0: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "gst-launch-1.0 {description} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(started.elapsed().as_secs_f64())
}

fn raw_source(path: &Path) -> String {
    format!(
        "filesrc location={} ! rawvideoparse width=1920 height=1080 format=i420 framerate=30/1",
        path.display()
    )
}

fn ffmpeg(path: &Path) -> Result<f64, String> {
    let started = Instant::now();
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "1920x1080", "-r", "30", "-i"])
        .arg(path)
        .args([
            "-filter_complex",
            "[0:v]split[bg][fg];[bg]scale=1920:3414,boxblur=20:5[blurred];[blurred][fg]overlay=0:(H-h)/2",
            "-f",
            "null",
            "-",
        ])
        .output()
        .map_err(|e| format!("cannot run ffmpeg ({e}); `make bench` installs it"))?;
    if !output.status.success() {
        return Err(format!(
            "ffmpeg failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(started.elapsed().as_secs_f64())
}

pub fn run() -> BenchResult {
    let input = raw_input()?;
    let source = raw_source(&input);
    let element =
        format!("{source} ! m3ddmoutpaint fill-mode=blur aspect=9/16 ! fakesink sync=false");
    let videobox = format!("{source} ! videobox top=-{PAD} bottom=-{PAD} ! fakesink sync=false");
    gst_launch(&element)?; // the raw file into the page cache
    let (mut ours, mut boxed, mut theirs) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..2 {
        ours = ours.min(gst_launch(&element)?);
        boxed = boxed.min(gst_launch(&videobox)?);
        theirs = theirs.min(ffmpeg(&input)?);
    }
    let fps = |secs: f64| FRAMES as f64 / secs;
    println!(
        "blur ({FRAMES} frames 1920x1080 I420 to 1920x3414, best of 2): element {:.1} frames/s, \
         ffmpeg blur-pad {:.1} frames/s, videobox {:.1} frames/s",
        fps(ours),
        fps(theirs),
        fps(boxed)
    );
    println!("blur-vs-ffmpeg: {:.2}", fps(ours) / fps(theirs));
    println!("blur-vs-videobox: {:.2}", fps(ours) / fps(boxed));
    Ok(())
}
