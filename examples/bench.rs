// SPDX-License-Identifier: MPL-2.0
//! `make bench` (`cargo run --release --example bench -- [MODEL_DIR] [FRAMES] [STEPS] [CANVAS]`):
//! times the engine on synthetic frames — model load, one U-Net call on the
//! guidance batch, and a whole streaming run (windows per second, frames per
//! second) — and the `blur` fill of one 1080p frame. Prints one line per figure.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use gstm3ddm::engine::geometry::{Ratio, canvas_layout};
use gstm3ddm::engine::{
    DenoiseParams, Model, ModelOptions, RgbImage, SessionConfig, StreamOutpainter, pixels,
};

fn arg<T: std::str::FromStr>(n: usize, default: T) -> T {
    std::env::args()
        .nth(n)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A moving gradient, so that frames differ.
fn synthetic_frame(width: u32, height: u32, k: u32) -> RgbImage {
    let mut data = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            data.extend_from_slice(&[
                ((x + 3 * k) % 256) as u8,
                ((y + k) % 256) as u8,
                ((x ^ y) % 256) as u8,
            ]);
        }
    }
    RgbImage {
        width,
        height,
        data,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model_dir: String = arg(1, "models/tiny".to_string());
    let frames: u32 = arg(2, 60);
    let steps: u32 = arg(3, 10);
    let t0 = Instant::now();
    let model = Model::load(&ModelOptions {
        model_dir: model_dir.into(),
        session: SessionConfig::default(),
        remote: Default::default(),
    })?;
    let canvas: u32 = arg(4, model.canvas());
    println!(
        "model load: {:.3} s (provider {})",
        t0.elapsed().as_secs_f64(),
        model.provider_in_use()
    );

    // One U-Net call on the 3-item guidance batch at this canvas.
    let (h, w) = ((canvas / 8) as usize, (canvas / 8) as usize);
    let probe = vec![0.0f32; 16 * 4 * h * w];
    let (context, tokens, dim) = model.global_context(&probe, h, w)?;
    let batch = 3;
    let sample = vec![0.1f32; batch * 9 * 16 * h * w];
    let contexts: Vec<f32> = context
        .iter()
        .copied()
        .cycle()
        .take(batch * tokens * dim)
        .collect();
    let mut out = Vec::new();
    model.unet(
        &sample,
        batch,
        (h, w),
        981,
        30,
        &contexts,
        (tokens, dim),
        &mut out,
    )?; // warm-up
    let calls = 3;
    let t = Instant::now();
    for _ in 0..calls {
        model.unet(
            &sample,
            batch,
            (h, w),
            981,
            30,
            &contexts,
            (tokens, dim),
            &mut out,
        )?;
    }
    println!(
        "unet call (batch 3 x 16 frames, canvas {canvas}): {:.3} s",
        t.elapsed().as_secs_f64() / calls as f64
    );

    // A whole streaming run: 16:9 source to 9:16 at this canvas.
    let layout = canvas_layout(320, 180, Ratio::new(9, 16)?, canvas)?;
    let params = DenoiseParams {
        steps,
        ..DenoiseParams::default()
    };
    let mut stream = StreamOutpainter::new(
        std::slice::from_ref(&model),
        params,
        layout,
        30.0,
        frames as usize,
    )?;
    let (cw, ch) = (layout.content.width(), layout.content.height());
    for k in 0..frames {
        stream.push(synthetic_frame(cw, ch, k))?;
    }
    let cancel = AtomicBool::new(false);
    let t = Instant::now();
    let mut produced = 0;
    while stream.pending() > 0 {
        produced += stream.run_next(true, &cancel)?.len();
    }
    let secs = t.elapsed().as_secs_f64();
    let stats = stream.stats();
    println!(
        "stream: {frames} frames, {steps} steps, canvas {canvas}: {secs:.2} s, {} windows ({:.3} s/window), {:.2} frames/s, {produced} frames out",
        stats.windows_run,
        secs / stats.windows_run.max(1) as f64,
        produced as f64 / secs
    );

    // The blur fill of one frame (no model): the per-frame cost of fill-mode=blur at canvas 256.
    let layout = canvas_layout(1920, 1080, Ratio::new(9, 16)?, 256)?;
    let content = synthetic_frame(layout.content.width(), layout.content.height(), 0);
    let t = Instant::now();
    let reps = 20;
    for _ in 0..reps {
        std::hint::black_box(pixels::blur_canvas(&content, &layout));
    }
    println!(
        "blur canvas (256): {:.2} ms",
        t.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
    Ok(())
}
