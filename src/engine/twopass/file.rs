// SPDX-License-Identifier: MPL-2.0
//! The keyframe plan file: the line `m3ddm-keyframe-plan`, a little-endian u32
//! header length, a JSON header (format version; per shot in frame order, its
//! frame count, fps, layout, denoising parameters, model identity, strides and
//! keyframe indices; the size and sha256 of the data), then the data:
//! little-endian f32, per shot the 16 global latents then each keyframe's
//! latent in ascending frame order. Version 2 added the shots (version 1 held
//! one clip); version 3 the strides (a version 2 file, still read, was made at
//! the official 15, 5, 1).
//! About 4·4·(C/8)² bytes per keyframe (16 KiB at canvas 256), i.e. ~1 KiB
//! per source frame; neither writing nor reading holds the data whole (a
//! plan read leaves the latents in the file: `latents.rs`).

use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{KeyframePlan, PlanLatents, ShotPlans};
use crate::engine::error::{EngineError, Result};
use crate::engine::geometry::{CanvasLayout, Rect};
use crate::engine::limits::{LATENT_FACTOR, check_canvas_side};
use crate::engine::planner::Strides;
use crate::engine::scheduler::SchedulerKind;
use crate::engine::window::DenoiseParams;
use crate::engine::window::LATENT_CHANNELS;

/// The plan file format this build writes and reads.
pub const PLAN_FORMAT_VERSION: u32 = 3;
/// The older format this build still reads: no strides (the official ones).
const UNSTRIDED_FORMAT_VERSION: u32 = 2;
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
    /// The coarse-to-fine strides (from version 3; absent: 15, 5, 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    strides: Option<Vec<usize>>,
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

/// Writes `plans` to `path` (replacing it), a latent at a time.
pub fn write_plan(path: &Path, plans: &ShotPlans) -> Result<()> {
    let mut hasher = Sha256::new();
    let mut data_bytes = 0u64;
    for plan in &plans.shots {
        plan.check_shape()?;
        plan.latents.for_each_latent(|latent| {
            for v in latent {
                hasher.update(v.to_le_bytes());
            }
            data_bytes += 4 * latent.len() as u64;
            Ok(())
        })?;
    }
    let header = Header {
        format_version: PLAN_FORMAT_VERSION,
        shots: plans.shots.iter().map(|plan| shot_header(plan)).collect(),
        data_bytes,
        data_sha256: hex(&hasher.finalize()),
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
    for plan in &plans.shots {
        plan.latents.for_each_latent(|latent| {
            let bytes: Vec<u8> = latent.iter().flat_map(|v| v.to_le_bytes()).collect();
            out.write_all(&bytes).map_err(io)
        })?;
    }
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
        strides: Some(plan.strides.as_slice().to_vec()),
        latent_len: plan.latent_len(),
        keyframes: plan.latents.keyframes().to_vec(),
    }
}

/// Reads a plan file written by [`write_plan`], with a sentence naming the
/// problem for a file that is not one, of another version, or damaged. The
/// latents stay in the file (read when needed); the whole file is read once
/// here, to check its sha256.
pub fn read_plan(path: &Path) -> Result<ShotPlans> {
    let bad = |why: String| EngineError::InvalidInput(format!("{}: {why}", path.display()));
    let mut file =
        std::fs::File::open(path).map_err(|e| bad(format!("cannot open the plan file: {e}")))?;
    let file_len = file
        .metadata()
        .ok()
        .filter(|meta| meta.is_file())
        .map(|meta| meta.len())
        .ok_or_else(|| bad("not a regular file".into()))?;
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
    if (MAGIC.len() + 4) as u64 + u64::from(len) > file_len {
        return Err(bad(format!(
            "the header announces {len} bytes, the file holds {file_len} in all (a truncated file?)"
        )));
    }
    let mut json = vec![0u8; len as usize];
    file.read_exact(&mut json)
        .map_err(|_| bad("the plan file ends inside its header".into()))?;
    let version: serde_json::Value =
        serde_json::from_slice(&json).map_err(|e| bad(format!("the header is not JSON: {e}")))?;
    let found = version["format_version"].as_u64();
    let known = [UNSTRIDED_FORMAT_VERSION, PLAN_FORMAT_VERSION].map(u64::from);
    if !found.is_some_and(|v| known.contains(&v)) {
        return Err(bad(format!(
            "plan format version {}, this build reads versions {UNSTRIDED_FORMAT_VERSION} and {PLAN_FORMAT_VERSION}",
            found.map_or("missing".into(), |v| v.to_string())
        )));
    }
    let mut header: Header = serde_json::from_value(version)
        .map_err(|e| bad(format!("the header is incomplete: {e}")))?;
    for (k, shot) in header.shots.iter_mut().enumerate() {
        match (header.format_version, &shot.strides) {
            (UNSTRIDED_FORMAT_VERSION, _) => shot.strides = None,
            (_, None) => return Err(bad(format!("shot {k} has no strides"))),
            _ => {}
        }
    }
    let data_start = (MAGIC.len() + 4 + json.len()) as u64;
    if header.data_bytes != file_len - data_start {
        return Err(bad(format!(
            "the header announces {} bytes of data, the file holds {} after its header (a truncated file?)",
            header.data_bytes,
            file_len - data_start
        )));
    }
    check_shot_sizes(&header.shots, header.data_bytes).map_err(bad)?;
    let mut hasher = Sha256::new();
    let data_len = std::io::copy(&mut file, &mut hasher)
        .map_err(|e| bad(format!("cannot read the plan's data: {e}")))?;
    if data_len != header.data_bytes {
        return Err(bad(format!(
            "the data has {data_len} bytes, the header says {} (a truncated file?)",
            header.data_bytes
        )));
    }
    if hex(&hasher.finalize()) != header.data_sha256 {
        return Err(bad(
            "the data does not match its sha256 (a damaged file)".into()
        ));
    }
    let file = std::sync::Arc::new(file);
    let mut first_byte = data_start;
    let data_end = data_start + data_len;
    let mut shots = Vec::new();
    for (k, mut shot) in header.shots.into_iter().enumerate() {
        let latent_len = shot.latent_len;
        let bytes = shot_data_bytes(&shot).unwrap_or(u64::MAX);
        if latent_len == 0 || data_end - first_byte < bytes {
            return Err(bad(format!(
                "the data ends inside shot {k}'s 16 global latents and {} keyframe latents of {latent_len}",
                shot.keyframes.len()
            )));
        }
        if !shot.keyframes.is_sorted_by(|a, b| a < b) {
            return Err(bad(format!(
                "shot {k}'s keyframes are not in ascending order"
            )));
        }
        let latents = PlanLatents::in_file(
            file.clone(),
            path,
            first_byte,
            latent_len,
            std::mem::take(&mut shot.keyframes),
        );
        first_byte += bytes;
        let plan = shot_plan(shot, latents).map_err(|e| bad(e.to_string()))?;
        plan.check_shape().map_err(|e| bad(e.to_string()))?;
        shots.push(plan);
    }
    if first_byte != data_end {
        return Err(bad(format!(
            "{} values after the last shot's latents",
            (data_end - first_byte) / 4
        )));
    }
    ShotPlans::new(shots).map_err(|e| bad(e.to_string()))
}

/// The bytes of a shot's latents (its 16 global latents and one per keyframe),
/// `None` past `u64`.
fn shot_data_bytes(shot: &ShotHeader) -> Option<u64> {
    let latents =
        (crate::engine::planner::GLOBAL_FRAMES as u64).checked_add(shot.keyframes.len() as u64)?;
    latents.checked_mul(4)?.checked_mul(shot.latent_len as u64)
}

/// Refuses, before anything of their size is allocated, shots whose latents
/// the data cannot hold, of another latent size than their canvas's, or of
/// more frames than their keyframes can cover (the official plan has a
/// keyframe every first-stride frames from 50 frames on): every later
/// allocation is then bounded by the file's size.
fn check_shot_sizes(shots: &[ShotHeader], data_bytes: u64) -> std::result::Result<(), String> {
    use crate::engine::planner::{COARSE_MIN_FRAMES, WINDOW_LEN};
    let mut announced = 0u64;
    for (k, shot) in shots.iter().enumerate() {
        let strides = shot_strides(shot).map_err(|e| format!("shot {k}: {}", e.sentence()))?;
        check_canvas_side(shot.canvas as usize).map_err(|e| format!("shot {k}: {e}"))?;
        let side = (shot.canvas / LATENT_FACTOR) as u64;
        let expected_len = LATENT_CHANNELS as u64 * side * side;
        if shot.latent_len as u64 != expected_len {
            return Err(format!(
                "shot {k}'s latents of {} values do not fit its {} canvas ({expected_len} values each)",
                shot.latent_len, shot.canvas
            ));
        }
        announced = shot_data_bytes(shot)
            .and_then(|bytes| announced.checked_add(bytes))
            .filter(|&bytes| bytes <= data_bytes)
            .ok_or_else(|| {
                format!(
                    "shot {k} announces {} keyframe latents of {} values, more than the {data_bytes} bytes of data hold",
                    shot.keyframes.len(),
                    shot.latent_len
                )
            })?;
        let most_frames =
            (shot.keyframes.len() + WINDOW_LEN + 1) * strides.coarsest() + COARSE_MIN_FRAMES;
        if shot.total_frames > most_frames {
            return Err(format!(
                "shot {k} announces {} frames, more than its {} keyframes can cover",
                shot.total_frames,
                shot.keyframes.len()
            ));
        }
    }
    Ok(())
}

/// A shot's strides: those of its header, or the official ones (version 2).
fn shot_strides(shot: &ShotHeader) -> Result<Strides> {
    match &shot.strides {
        Some(list) => Strides::new(list.clone()),
        None => Ok(Strides::official()),
    }
}

/// A shot's plan from its header and its latents.
fn shot_plan(header: ShotHeader, latents: PlanLatents) -> Result<KeyframePlan> {
    Ok(KeyframePlan {
        strides: shot_strides(&header)?,
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
        latents,
    })
}
