// SPDX-License-Identifier: MPL-2.0
//! The window sections: one 16-frame window of the golden `tiny-model-a`
//! through the engine's streaming path (what the element runs) against an
//! eager PyTorch run of the official arithmetic, interleaved; and the fast
//! schedulers against PNDM 50 on that window.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstm3ddm::engine::geometry::{CanvasLayout, Ratio, canvas_layout};
use gstm3ddm::engine::planner::Strides;
use gstm3ddm::engine::{
    Cancel, DenoiseParams, ExecutionProvider, Model, ModelOptions, RgbImage, SchedulerKind,
    SessionConfig, StreamOutpainter,
};

use super::support::{
    BenchResult, exported_tiny_model_a, golden, min_median, project, secs, synthetic_frame,
    venv_python,
};

/// The window's steps (the golden window case's).
const STEPS: u32 = 10;
/// Interleaved repetitions of each side.
const REPS: usize = 3;
/// FLOPs of one 3-item U-Net call of tiny-model-a at 16×16 latents: 3/4 of the
/// 66.8 GFLOP torch's FLOP counter gave for the official 4-item batch
/// (../shared/notes/measured.md).
const UNET_GFLOP_3_ITEMS: f64 = 66.8 * 3.0 / 4.0;

fn load_tiny_model_a() -> Result<Arc<Model>, String> {
    let model_dir = exported_tiny_model_a()?;
    Model::load(&ModelOptions {
        model_dir,
        session: SessionConfig {
            provider: ExecutionProvider::Cpu,
            ..SessionConfig::default()
        },
        remote: Default::default(),
    })
    .map_err(|e| e.to_string())
}

/// The golden window's canvas (16×16 latents).
const CANVAS: u32 = 128;

/// A 16:9 source reframed to 9:16 on the window's canvas.
fn layout(_model: &Model) -> Result<CanvasLayout, String> {
    canvas_layout(256, 144, Ratio { num: 9, den: 16 }, CANVAS).map_err(|e| e.to_string())
}

/// One window as the element drives it: 16 source frames in, 16 canvases out.
fn engine_window(
    model: &Arc<Model>,
    params: DenoiseParams,
) -> Result<(Duration, Vec<RgbImage>), String> {
    let layout = layout(model)?;
    let started = Instant::now();
    let mut stream = StreamOutpainter::new(
        std::slice::from_ref(model),
        params,
        layout,
        30.0,
        16,
        Strides::official(),
    )
    .map_err(|e| e.to_string())?;
    let (w, h) = (layout.content.width(), layout.content.height());
    for k in 0..16 {
        stream
            .push(synthetic_frame(w, h, k))
            .map_err(|e| e.to_string())?;
    }
    let canvases = stream
        .run_next(true, &Cancel::new())
        .map_err(|e| e.to_string())?;
    if canvases.len() != 16 {
        return Err(format!("{} canvases for 16 frames", canvases.len()));
    }
    Ok((started.elapsed(), canvases))
}

/// The eager PyTorch window, one process answering one window per request.
struct TorchWindow {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl TorchWindow {
    fn start(steps: u32) -> Result<TorchWindow, String> {
        let golden = golden();
        let mut child = Command::new(venv_python())
            .env("PYTHONPATH", project().join("models"))
            .args(["-m", "m3ddm_export.bench_window", "--on-demand", "--steps"])
            .arg(steps.to_string())
            .arg("--case")
            .arg(golden.join("window-tiny-a"))
            .arg("--model")
            .arg(golden.join("tiny-model-a"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the PyTorch window ({e}); run `make venv`"))?;
        let input = child.stdin.take().expect("piped");
        let mut output = BufReader::new(child.stdout.take().expect("piped"));
        loop {
            let line = read_line(&mut output)?;
            println!("{line}");
            if line == "torch_window ready" {
                break;
            }
        }
        Ok(TorchWindow {
            child,
            input,
            output,
        })
    }

    /// One window; its time as the script measured it (no import, no loading).
    fn run(&mut self) -> Result<Duration, String> {
        writeln!(self.input, "run").map_err(|e| format!("the PyTorch window stopped: {e}"))?;
        let line = read_line(&mut self.output)?;
        let seconds = line
            .split_once("seconds=")
            .and_then(|(_, s)| s.parse::<f64>().ok())
            .ok_or_else(|| format!("unexpected line from the PyTorch window: {line}"))?;
        Ok(Duration::from_secs_f64(seconds))
    }
}

impl Drop for TorchWindow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_line(output: &mut impl BufRead) -> Result<String, String> {
    let mut line = String::new();
    match output.read_line(&mut line) {
        Ok(0) => Err("the PyTorch window ended early (see its error above)".into()),
        Ok(_) => Ok(line.trim().to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// The 3-item U-Net call at 16×16 latents: median time and GFLOP/s.
fn unet_call(model: &Model) -> BenchResult {
    let side = 16;
    let probe = vec![0.0f32; 16 * 4 * side * side];
    let (context, tokens, dim) = model
        .global_context(&probe, (side, side), &Cancel::new())
        .map_err(|e| e.to_string())?;
    let sample = vec![0.1f32; 3 * 9 * 16 * side * side];
    let contexts = context.repeat(3);
    let mut out = Vec::new();
    let mut times = Vec::new();
    for _ in 0..4 {
        let t = Instant::now();
        model
            .unet(
                &sample,
                3,
                (side, side),
                501,
                30,
                &contexts,
                (tokens, dim),
                &mut out,
                &Cancel::new(),
            )
            .map_err(|e| e.to_string())?;
        times.push(t.elapsed());
    }
    let (min, median) = min_median(&times[1..]);
    println!(
        "unet-call (3 items, 16 frames, 16x16 latents): min {:.3} s, median {:.3} s, {:.0} GFLOP/s",
        secs(min),
        secs(median),
        UNET_GFLOP_3_ITEMS / secs(median)
    );
    Ok(())
}

pub fn compare_with_pytorch() -> BenchResult {
    let model = load_tiny_model_a()?;
    unet_call(&model)?;
    let params = DenoiseParams {
        steps: STEPS,
        ..DenoiseParams::default()
    };
    engine_window(&model, params.clone())?; // warm-up
    let mut torch = TorchWindow::start(STEPS)?;
    let (mut engine, mut eager) = (Vec::new(), Vec::new());
    for rep in 1..=REPS {
        engine.push(engine_window(&model, params.clone())?.0);
        eager.push(torch.run()?);
        println!(
            "rep {rep}: engine {:.2} s, pytorch {:.2} s",
            secs(engine[rep - 1]),
            secs(eager[rep - 1])
        );
    }
    let (emin, emed) = min_median(&engine);
    let (tmin, tmed) = min_median(&eager);
    println!(
        "window (16 frames, canvas 128, {STEPS} PNDM steps): engine streaming path min {:.2} s median {:.2} s; \
         eager PyTorch min {:.2} s median {:.2} s",
        secs(emin),
        secs(emed),
        secs(tmin),
        secs(tmed)
    );
    println!("cpu-window-speedup: {:.2}", secs(tmed) / secs(emed));
    Ok(())
}

/// Mean and largest difference (0–255) of the generated band (canvas pixels
/// outside the content box) between two runs.
fn band_difference(layout: &CanvasLayout, a: &[RgbImage], b: &[RgbImage]) -> (f64, u8) {
    let content = layout.content;
    let (mut sum, mut count, mut max) = (0u64, 0u64, 0u8);
    for (x, y) in a.iter().zip(b) {
        for (k, (p, q)) in x
            .data
            .chunks_exact(3)
            .zip(y.data.chunks_exact(3))
            .enumerate()
        {
            let (px, py) = ((k as u32) % x.width, (k as u32) / x.width);
            let inside =
                (content.x0..content.x1).contains(&px) && (content.y0..content.y1).contains(&py);
            if inside {
                continue;
            }
            for c in 0..3 {
                let d = p[c].abs_diff(q[c]);
                sum += d as u64;
                count += 1;
                max = max.max(d);
            }
        }
    }
    (sum as f64 / count.max(1) as f64, max)
}

pub fn compare_schedulers() -> BenchResult {
    let model = load_tiny_model_a()?;
    let layout = layout(&model)?;
    let run = |scheduler, steps| {
        engine_window(
            &model,
            DenoiseParams {
                steps,
                scheduler,
                ..DenoiseParams::default()
            },
        )
    };
    let (reference_time, reference) = run(SchedulerKind::Pndm, 50)?;
    println!("pndm 50: {:.2} s", secs(reference_time));
    for (kind, steps) in [(SchedulerKind::DpmSolverPp, 20), (SchedulerKind::Ddim, 25)] {
        let (time, canvases) = run(kind, steps)?;
        let (mean, max) = band_difference(&layout, &reference, &canvases);
        println!(
            "{kind} {steps}: {:.2} s ({:.1}x faster than pndm 50); generated band vs pndm 50: mean {mean:.2}, max {max} (of 255)",
            secs(time),
            secs(reference_time) / secs(time)
        );
    }
    Ok(())
}
