// SPDX-License-Identifier: MPL-2.0
//! `make bench` (`cargo run --release --example bench_remote -- [MODEL_DIR] [REPS]`):
//! the remote backend against the in-process one on the same model. Starts
//! one test server (Triton on the CPU, `.venv-serving`, on free loopback
//! ports) and prints: the time of one U-Net call on the 3-item guidance batch
//! and on 1 item (what the engine sends on a CPU), in process and through the
//! server, interleaved, min/median, and the overhead: the client's time of a
//! remote call less the time the model ran in the server (Triton's
//! statistics), which holds on a busy machine where the two medians drift; the bytes sent and
//! received per U-Net call and per window (10 steps); and the bandwidth a
//! 30 fps stream needs with the published model (canvas 256, fp16).

#[path = "../tests/remote/server.rs"]
mod server;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstm3ddm::engine::geometry::{Ratio, canvas_layout};
use gstm3ddm::engine::planner::Strides;
use gstm3ddm::engine::{
    Cancel, DenoiseParams, ExecutionProvider, Model, ModelOptions, RemoteOptions, RgbImage,
    ServerStats, SessionConfig, StreamOutpainter,
};

/// The guidance batch: conditional, unconditional and global-unconditional items.
const GUIDANCE_ITEMS: usize = 3;
const WINDOW_STEPS: u32 = 10;

fn arg<T: std::str::FromStr>(n: usize, default: T) -> T {
    std::env::args()
        .nth(n)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn load(model_dir: &str, servers: Vec<String>) -> Result<Arc<Model>, Box<dyn std::error::Error>> {
    Ok(Model::load(&ModelOptions {
        model_dir: model_dir.into(),
        session: SessionConfig {
            provider: ExecutionProvider::Cpu,
            ..SessionConfig::default()
        },
        remote: RemoteOptions {
            servers,
            ..RemoteOptions::default()
        },
    })?)
}

/// Inputs of one U-Net call of `batch` items at the model's canvas.
struct UnetCall {
    sample: Vec<f32>,
    context: Vec<f32>,
    batch: usize,
    side: usize,
    tokens: usize,
    dim: usize,
}

impl UnetCall {
    fn new(model: &Model, batch: usize) -> Result<UnetCall, Box<dyn std::error::Error>> {
        let side = (model.canvas() / 8) as usize;
        let (context, tokens, dim) = model.global_context(
            &vec![0.0; 16 * 4 * side * side],
            (side, side),
            &Cancel::new(),
        )?;
        Ok(UnetCall {
            sample: (0..batch * 9 * 16 * side * side)
                .map(|i| ((i % 97) as f32 / 48.0) - 1.0)
                .collect(),
            context: context
                .iter()
                .copied()
                .cycle()
                .take(batch * tokens * dim)
                .collect(),
            batch,
            side,
            tokens,
            dim,
        })
    }

    fn run(&self, model: &Model) -> Result<Duration, Box<dyn std::error::Error>> {
        let mut out = Vec::new();
        let t = Instant::now();
        model.unet(
            &self.sample,
            self.batch,
            (self.side, self.side),
            981,
            30,
            &self.context,
            (self.tokens, self.dim),
            &mut out,
            &Cancel::new(),
        )?;
        Ok(t.elapsed())
    }
}

fn min_median(times: &mut [Duration]) -> (f64, f64) {
    times.sort();
    (
        times[0].as_secs_f64() * 1e3,
        times[times.len() / 2].as_secs_f64() * 1e3,
    )
}

/// Calls, bytes sent and bytes received by all servers since `before`.
fn traffic(model: &Model, before: &[ServerStats]) -> (u64, u64, u64) {
    let now = model.server_stats().unwrap_or_default();
    now.iter().zip(before).fold((0, 0, 0), |(c, s, r), (n, b)| {
        (
            c + n.calls - b.calls,
            s + n.bytes_sent - b.bytes_sent,
            r + n.bytes_received - b.bytes_received,
        )
    })
}

/// Triton's statistics of `model`: executions and the time the model itself
/// ran (`compute_infer`: the backend's execute, here ONNX Runtime in Triton's
/// python backend), from its HTTP endpoint. Triton records a request after
/// answering it, so this first waits a moment.
fn model_time(http_port: u16, model: &str) -> Result<(u64, Duration), Box<dyn std::error::Error>> {
    std::thread::sleep(Duration::from_millis(300));
    let mut connection = TcpStream::connect(("127.0.0.1", http_port))?;
    // In one write: Triton's HTTP server has answered 404 to a request line that came in pieces.
    let request = format!("GET /v2/models/{model}/stats HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    connection.write_all(request.as_bytes())?;
    let mut response = String::new();
    connection.read_to_string(&mut response)?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let stats: serde_json::Value = serde_json::from_str(body)?;
    let infer = &stats["model_stats"][0]["inference_stats"]["compute_infer"];
    match (infer["count"].as_u64(), infer["ns"].as_u64()) {
        (Some(count), Some(nanos)) => Ok((count, Duration::from_nanos(nanos))),
        _ => Err(format!("Triton's statistics of {model} lack compute_infer: {response}").into()),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model_dir: String = arg(1, "models/tiny".to_string());
    let reps: usize = arg(2, 7);
    let python = match server::serving_python() {
        Ok(python) => python,
        Err(why) => {
            println!("remote backend: not measured, {why}");
            return Ok(());
        }
    };
    let servers = server::TestServer::start(&python, std::path::Path::new(&model_dir), &[&[]]);
    let local = load(&model_dir, Vec::new())?;
    let remote = load(&model_dir, vec![servers[0].url.clone()])?;
    let canvas = local.canvas();

    for batch in [GUIDANCE_ITEMS, 1] {
        let call = UnetCall::new(&local, batch)?;
        call.run(&local)?; // warm-up
        call.run(&remote)?;
        let (mut in_process, mut through_server) = (Vec::new(), Vec::new());
        let (count_before, server_before) = model_time(servers[0].http_port, "unet")?;
        for _ in 0..reps {
            in_process.push(call.run(&local)?);
            through_server.push(call.run(&remote)?);
        }
        let (count_after, server_after) = model_time(servers[0].http_port, "unet")?;
        let in_server = (server_after - server_before) / (count_after - count_before).max(1) as u32;
        let client_mean = through_server.iter().sum::<Duration>() / reps.max(1) as u32;
        let before = remote.server_stats().unwrap_or_default();
        call.run(&remote)?;
        let (_, sent, received) = traffic(&remote, &before);
        let (local_min, local_median) = min_median(&mut in_process);
        let (remote_min, remote_median) = min_median(&mut through_server);
        println!(
            "unet call, {batch} item(s), canvas {canvas}, {reps} interleaved: in process min {local_min:.1} ms \
             median {local_median:.1} ms; remote min {remote_min:.1} ms median {remote_median:.1} ms; \
             overhead {:.1} ms (remote mean {:.1} ms less {:.1} ms running the model in the server; medians differ by {:+.1} ms); \
             {sent} B sent, {received} B received per call",
            (client_mean.as_secs_f64() - in_server.as_secs_f64()) * 1e3,
            client_mean.as_secs_f64() * 1e3,
            in_server.as_secs_f64() * 1e3,
            remote_median - local_median,
        );
    }

    // One window (16 frames) of WINDOW_STEPS steps through the server.
    let layout = canvas_layout(320, 180, Ratio::new(9, 16)?, canvas)?;
    let params = DenoiseParams {
        steps: WINDOW_STEPS,
        ..DenoiseParams::default()
    };
    let mut stream = StreamOutpainter::new(
        std::slice::from_ref(&remote),
        params,
        layout,
        30.0,
        16,
        Strides::official(),
    )?;
    let (cw, ch) = (layout.content.width(), layout.content.height());
    for k in 0..16u32 {
        let data = (0..cw * ch * 3)
            .map(|i| ((i + 7 * k) % 251) as u8)
            .collect();
        stream.push(RgbImage {
            width: cw,
            height: ch,
            data,
        })?;
    }
    let before = remote.server_stats().unwrap_or_default();
    let cancel = Cancel::new();
    while stream.pending() > 0 {
        stream.run_next(true, &cancel)?;
    }
    let windows = stream.stats().windows_run.max(1);
    let (calls, sent, received) = traffic(&remote, &before);
    println!(
        "window (16 frames, {WINDOW_STEPS} steps, canvas {canvas}, VAE and global encoder included): \
         {:.0} calls, {:.1} MB sent, {:.1} MB received per window ({windows} window(s) run)",
        calls as f64 / windows as f64,
        sent as f64 / 1e6 / windows as f64,
        received as f64 / 1e6 / windows as f64
    );
    published_model_bandwidth();
    Ok(())
}

/// The published model's U-Net traffic at canvas 256 in fp16 (models/README.md):
/// 3 items of 32×32 latents, 3,136 context tokens of 320; 30 fps is two groups of
/// 15 frames a second, about 1.27 windows a group, 50 steps a window.
fn published_model_bandwidth() {
    let (items, latent, tokens, dim, half) = (3u64, 32u64, 3136u64, 320u64, 2u64);
    let sample = items * 9 * 16 * latent * latent * half;
    let scalars = 2 * items * 8;
    let context = items * tokens * dim * half;
    let noise_pred = items * 4 * 16 * latent * latent * half;
    let calls_per_second = 30.0 / 15.0 * 1.27 * 50.0;
    let gbits = |bytes: u64| bytes as f64 * calls_per_second * 8.0 / 1e9;
    println!(
        "published model, canvas 256, fp16, per U-Net call: sample {sample} B + timestep/fps {scalars} B \
         + context {context} B in, noise_pred {noise_pred} B out; at 30 fps ({calls_per_second:.0} calls/s): \
         {:.1} Gbit/s in with the context, {:.2} Gbit/s without it, {:.2} Gbit/s out",
        gbits(sample + scalars + context),
        gbits(sample + scalars),
        gbits(noise_pred)
    );
}
