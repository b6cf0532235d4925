// SPDX-License-Identifier: MPL-2.0
//! `make bench` (`cargo run --release --example bench -- [SECTION ...]`): the
//! project's figures, each compared side by side in one run.
//!
//! - `window`: one 16-frame window of the golden `tiny-model-a` (canvas 128,
//!   10 PNDM steps) through the engine's streaming path (16 source frames in,
//!   16 canvases out, as the element drives it) against an eager PyTorch run of
//!   the official arithmetic (`models/m3ddm_export/bench_window.py`),
//!   interleaved; the U-Net call and its GFLOP/s; `cpu-window-speedup: X`.
//! - `schedulers`: PNDM 50 against DPM-Solver++ 20 and DDIM 25 on that window:
//!   time, and the difference of the generated band.
//! - `element`: frames/s of the element in outpaint mode on 300 frames and the
//!   share of wall time spent outside the engine; peak RSS at 300 and 3000 frames.
//! - `blur`: `fill-mode=blur` on 300 frames of 1920×1080 I420 to 9:16 beside
//!   FFmpeg's blur-pad graph and `videobox` (black pad, a plain copy):
//!   `blur-vs-ffmpeg: Y`, `blur-vs-videobox: Z`.
//!
//! Without arguments every section runs. Figures are noisy on a shared
//! machine: compare within one run.

mod blur;
mod element;
mod support;
mod window;

use std::process::ExitCode;

const SECTIONS: [&str; 4] = ["window", "schedulers", "element", "blur"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The element section runs itself in a child process to read one run's peak RSS.
    if let [mode, frames] = &args[..]
        && mode == "--rss-run"
    {
        return element::rss_child(frames);
    }
    let chosen: Vec<&str> = if args.is_empty() {
        SECTIONS.to_vec()
    } else {
        args.iter().map(String::as_str).collect()
    };
    if let Some(bad) = chosen.iter().find(|s| !SECTIONS.contains(s)) {
        eprintln!(
            "bench: unknown section `{bad}` (sections: {})",
            SECTIONS.join(", ")
        );
        return ExitCode::FAILURE;
    }
    for section in chosen {
        println!("# {section}");
        let result = match section {
            "window" => window::compare_with_pytorch(),
            "schedulers" => window::compare_schedulers(),
            "element" => element::run(),
            "blur" => blur::run(),
            _ => unreachable!("checked above"),
        };
        if let Err(err) = result {
            eprintln!("bench: {section}: {err}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
