// SPDX-License-Identifier: MPL-2.0
//! The keyframe plan file: the line `m3ddm-keyframe-plan`, a little-endian u32
//! header length, a JSON header (format version; per shot in frame order, its
//! frame count, fps, layout, denoising parameters, model identity and keyframe
//! indices; the size and sha256 of the data), then the data: little-endian
//! f32, per shot the 16 global latents then each keyframe's latent in
//! ascending frame order. Version 2 added the shots (version 1 held one clip).
//! About 4·4·(C/8)² bytes per
//! keyframe (16 KiB at canvas 256), i.e. ~1 KiB per source frame.

use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{KeyframePlan, ShotPlans};
use crate::engine::error::{EngineError, Result};
use crate::engine::geometry::{CanvasLayout, Rect};
use crate::engine::scheduler::SchedulerKind;
use crate::engine::window::DenoiseParams;

/// The plan file format this build writes and reads.
pub const PLAN_FORMAT_VERSION: u32 = 2;
const MAGIC: &[u8] = b"m3ddm-keyframe-plan\n";
/// A header larger than this is not a plan's (millions of keyframes).
const MAX_HEADER_BYTES: u32 = 64 << 20;

#[derive(Serialize, Deserialize)]
struct Header {
    format_version: u32,
    shots: Vec<ShotHeader>,
    data_bytes: u64,
    data_sha256: String,
}

/// One shot's plan, but its latents.
#[derive(Serialize, Deserialize)]
struct ShotHeader {
    total_frames: usize,
    /// `None` for a rate that is not a number (JSON has no NaN).
    fps: Option<f64>,
    canvas: u32,
    content: [u32; 4],
    output_crop: [u32; 4],
    steps: u32,
    scheduler: String,
    guidance_scale: f32,
    global_guidance_scale: f32,
    seed: u64,
    model_identity: String,
    /// Values per latent, `4·(C/8)²`.
    latent_len: usize,
    keyframes: Vec<usize>,
}

fn rect_values(r: Rect) -> [u32; 4] {
    [r.x0, r.y0, r.x1, r.y1]
}

fn rect_of([x0, y0, x1, y1]: [u32; 4]) -> Rect {
    Rect { x0, y0, x1, y1 }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `plans` to `path` (replacing it).
pub fn write_plan(path: &Path, plans: &ShotPlans) -> Result<()> {
    let mut data: Vec<u8> = Vec::new();
    let mut shots = Vec::new();
    for plan in &plans.shots {
        plan.check_shape()?;
        let values = plan
            .global_latents
            .iter()
            .chain(plan.keyframes.values().flatten());
        data.extend(values.flat_map(|v| v.to_le_bytes()));
        shots.push(shot_header(plan));
    }
    let header = Header {
        format_version: PLAN_FORMAT_VERSION,
        shots,
        data_bytes: data.len() as u64,
        data_sha256: hex(&Sha256::digest(&data)),
    };
    let json = serde_json::to_vec(&header)
        .map_err(|e| EngineError::InvalidInput(format!("cannot describe the plan: {e}")))?;
    let io = |e: std::io::Error| {
        EngineError::InvalidInput(format!(
            "cannot write the plan file {}: {e}",
            path.display()
        ))
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    out.write_all(MAGIC).map_err(io)?;
    out.write_all(&(json.len() as u32).to_le_bytes())
        .map_err(io)?;
    out.write_all(&json).map_err(io)?;
    out.write_all(&data).map_err(io)?;
    out.flush().map_err(io)
}

fn shot_header(plan: &KeyframePlan) -> ShotHeader {
    ShotHeader {
        total_frames: plan.total_frames,
        fps: plan.fps.is_finite().then_some(plan.fps),
        canvas: plan.layout.canvas,
        content: rect_values(plan.layout.content),
        output_crop: rect_values(plan.layout.output_crop),
        steps: plan.params.steps,
        scheduler: plan.params.scheduler.name().into(),
        guidance_scale: plan.params.guidance_scale,
        global_guidance_scale: plan.params.global_guidance_scale,
        seed: plan.params.seed,
        model_identity: plan.model_identity.clone(),
        latent_len: plan.global_latents.len() / crate::engine::planner::GLOBAL_FRAMES,
        keyframes: plan.keyframes.keys().copied().collect(),
    }
}

/// Reads a plan file written by [`write_plan`], with a sentence naming the
/// problem for a file that is not one, of another version, or damaged.
pub fn read_plan(path: &Path) -> Result<ShotPlans> {
    let bad = |why: String| EngineError::InvalidInput(format!("{}: {why}", path.display()));
    let mut file =
        std::fs::File::open(path).map_err(|e| bad(format!("cannot open the plan file: {e}")))?;
    let mut magic = vec![0u8; MAGIC.len()];
    if file.read_exact(&mut magic).is_err() || magic != MAGIC {
        return Err(bad("not an m3ddm keyframe plan file".into()));
    }
    let mut len = [0u8; 4];
    file.read_exact(&mut len)
        .map_err(|_| bad("the plan file ends inside its header".into()))?;
    let len = u32::from_le_bytes(len);
    if len > MAX_HEADER_BYTES {
        return Err(bad(format!("a header of {len} bytes is not a plan's")));
    }
    let mut json = vec![0u8; len as usize];
    file.read_exact(&mut json)
        .map_err(|_| bad("the plan file ends inside its header".into()))?;
    let version: serde_json::Value =
        serde_json::from_slice(&json).map_err(|e| bad(format!("the header is not JSON: {e}")))?;
    let found = version["format_version"].as_u64();
    if found != Some(u64::from(PLAN_FORMAT_VERSION)) {
        return Err(bad(format!(
            "plan format version {}, this build reads version {PLAN_FORMAT_VERSION}",
            found.map_or("missing".into(), |v| v.to_string())
        )));
    }
    let header: Header = serde_json::from_value(version)
        .map_err(|e| bad(format!("the header is incomplete: {e}")))?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .map_err(|e| bad(format!("cannot read the plan's data: {e}")))?;
    if data.len() as u64 != header.data_bytes {
        return Err(bad(format!(
            "the data has {} bytes, the header says {} (a truncated file?)",
            data.len(),
            header.data_bytes
        )));
    }
    if hex(&Sha256::digest(&data)) != header.data_sha256 {
        return Err(bad(
            "the data does not match its sha256 (a damaged file)".into()
        ));
    }
    let values: Vec<f32> = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let mut rest = values.as_slice();
    let mut shots = Vec::new();
    for (k, shot) in header.shots.into_iter().enumerate() {
        let latent_len = shot.latent_len;
        let global_len = crate::engine::planner::GLOBAL_FRAMES * latent_len;
        let len = global_len + shot.keyframes.len() * latent_len;
        if latent_len == 0 || rest.len() < len {
            return Err(bad(format!(
                "the data ends inside shot {k}'s 16 global latents and {} keyframe latents of {latent_len}",
                shot.keyframes.len()
            )));
        }
        let (ours, after) = rest.split_at(len);
        rest = after;
        let plan = shot_plan(shot, ours).map_err(|e| bad(e.to_string()))?;
        plan.check_shape().map_err(|e| bad(e.to_string()))?;
        shots.push(plan);
    }
    if !rest.is_empty() {
        return Err(bad(format!(
            "{} values after the last shot's latents",
            rest.len()
        )));
    }
    ShotPlans::new(shots).map_err(|e| bad(e.to_string()))
}

/// A shot's plan from its header and its latents (global, then keyframes).
fn shot_plan(header: ShotHeader, values: &[f32]) -> Result<KeyframePlan> {
    let global_len = crate::engine::planner::GLOBAL_FRAMES * header.latent_len;
    let keyframes = header
        .keyframes
        .iter()
        .zip(values[global_len..].chunks_exact(header.latent_len))
        .map(|(&f, latent)| (f, latent.to_vec()))
        .collect();
    Ok(KeyframePlan {
        total_frames: header.total_frames,
        fps: header.fps.unwrap_or(f64::NAN),
        layout: CanvasLayout {
            canvas: header.canvas,
            content: rect_of(header.content),
            output_crop: rect_of(header.output_crop),
        },
        params: DenoiseParams {
            steps: header.steps,
            scheduler: SchedulerKind::from_name(&header.scheduler)?,
            guidance_scale: header.guidance_scale,
            global_guidance_scale: header.global_guidance_scale,
            seed: header.seed,
        },
        model_identity: header.model_identity,
        global_latents: values[..global_len].to_vec(),
        keyframes,
    })
}
