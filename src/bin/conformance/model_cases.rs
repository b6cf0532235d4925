// SPDX-License-Identifier: MPL-2.0
//! Cases that run exported graphs: `manifest` (the exporter's own check),
//! `unet`, `vae` and `window` (and what `clip_cases.rs` shares). Each case's model directory (its `model`
//! field) is exported once per run with the project's exporter into
//! `<project>/.cache/export/<dir>-<hash of the model and exporter files>`, reused
//! while that hash matches; nothing is written into the case directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use gstm3ddm::engine::limits::check_canvas_side;
use gstm3ddm::engine::model::{Model, sha256_file};
use gstm3ddm::engine::pixels::tensor::unit_from_u8;
use gstm3ddm::engine::scheduler::SchedulerKind;
use gstm3ddm::engine::window::{
    self, Denoiser, FRAMES, GuidanceContext, LATENT_CHANNELS, WindowConstants, WindowLatents,
};
use gstm3ddm::engine::{
    Cancel, DenoiseParams, EngineError, ExecutionProvider, ModelOptions, SessionConfig,
};
use sha2::{Digest, Sha256};

use crate::golden::{Case, CaseResult, Pass, Tensor, compare, compare_slices};

/// Tolerances of the golden README.
const GRAPH_TOLERANCE: f64 = 1e-3;
pub(crate) const PIPELINE_TOLERANCE: f64 = 5e-3;
/// Hex digits of the hash in an export's folder name.
const HASH_CHARS: usize = 12;

/// The project root: `M3DDM_PROJECT_DIR`, else the crate's own directory.
fn project_dir() -> PathBuf {
    std::env::var_os("M3DDM_PROJECT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

pub(crate) fn engine(e: EngineError) -> String {
    e.to_string()
}

/// Exported model directories, one per source model directory per run.
pub struct ModelCache {
    models: HashMap<PathBuf, Result<Arc<Model>, String>>,
}

impl ModelCache {
    pub fn new() -> Self {
        ModelCache {
            models: HashMap::new(),
        }
    }

    /// The loaded export of the case's model directory (exported on first use).
    pub(crate) fn model(&mut self, case: &Case) -> Result<Arc<Model>, String> {
        let source = case.model_dir()?;
        let key = source
            .canonicalize()
            .map_err(|e| format!("model directory {}: {e}", source.display()))?;
        self.models
            .entry(key.clone())
            .or_insert_with(|| export_and_load(&key))
            .clone()
    }
}

fn export_and_load(source: &Path) -> Result<Arc<Model>, String> {
    let project = project_dir();
    let name = source
        .file_name()
        .map_or("model".into(), |n| n.to_string_lossy().into_owned());
    let out = project
        .join(".cache")
        .join("export")
        .join(format!("{name}-{}", source_hash(source, &project)?));
    let options = ModelOptions {
        model_dir: out.clone(),
        session: SessionConfig {
            provider: ExecutionProvider::Cpu,
            ..SessionConfig::default()
        },
        remote: Default::default(),
    };
    if out.join("manifest.json").is_file()
        && let Ok(model) = Model::load(&options)
    {
        return Ok(model);
    }
    let staging = out.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let output = exporter(&project)
        .args(["--unet".as_ref(), source.join("unet").as_os_str()])
        .args(["--vae".as_ref(), source.join("vae").as_os_str()])
        .args(["--out".as_ref(), staging.as_os_str()])
        .arg("--force")
        .output()
        .map_err(|e| format!("cannot run the exporter ({e}); run `make venv` first"))?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(format!(
            "exporting {} failed: {}",
            source.display(),
            last_line(&output)
        ));
    }
    let _ = std::fs::remove_dir_all(&out);
    std::fs::rename(&staging, &out)
        .map_err(|e| format!("cannot move the export to {}: {e}", out.display()))?;
    remove_stale_exports(&out, &name);
    Model::load(&options).map_err(engine)
}

/// Removes the exports of earlier versions of the same model directory (best effort).
fn remove_stale_exports(current: &Path, name: &str) {
    let (Some(cache), Some(keep)) = (current.parent(), current.file_name()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let stale = file_name
            .to_string_lossy()
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|hash| {
                hash.len() == HASH_CHARS && hash.bytes().all(|b| b.is_ascii_hexdigit())
            });
        if stale && file_name != keep {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `<venv python> -m m3ddm_export` with the project's `models` on PYTHONPATH.
fn exporter(project: &Path) -> Command {
    let mut command = Command::new(project.join(".venv").join("bin").join("python"));
    command
        .env("PYTHONPATH", project.join("models"))
        .args(["-m", "m3ddm_export"]);
    command
}

fn last_line(output: &std::process::Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim()
        .to_owned()
}

/// A short hash of the model's files and of the exporter's sources.
fn source_hash(source: &Path, project: &Path) -> Result<String, String> {
    let mut files = Vec::new();
    collect_files(source, &mut files)?;
    collect_files(&project.join("models").join("m3ddm_export"), &mut files)?;
    files.retain(|f| !f.components().any(|c| c.as_os_str() == "__pycache__"));
    files.sort();
    let mut hasher = Sha256::new();
    for file in &files {
        let digest =
            sha256_file(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        hasher.update(format!(
            "{} {digest}\n",
            file.file_name().unwrap_or_default().to_string_lossy()
        ));
    }
    Ok(hasher
        .finalize()
        .iter()
        .take(HASH_CHARS / 2)
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    for entry in
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?
    {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// `manifest`: the exporter builds the full U-Net from the case's config and
/// compares its layout with the case.
pub fn manifest(case: &Case, _m: &mut ModelCache) -> CaseResult {
    let output = exporter(&project_dir())
        .arg("check-manifest")
        .arg(case.dir.join("case.json"))
        .output()
        .map_err(|e| format!("cannot run the exporter ({e}); run `make venv` first"))?;
    if output.status.success() {
        Ok(0.0)
    } else {
        Err(last_line(&output))
    }
}

/// `[n,c,h,w]` → `[n,(h w),c]` (the global encoder's tokens).
fn tokens_from_nchw(t: &Tensor) -> Result<Vec<f32>, String> {
    let [n, c, h, w] = t.shape[..] else {
        return Err(format!("a context of shape {:?} is not [n,c,h,w]", t.shape));
    };
    let mut out = vec![0.0; t.data.len()];
    for g in 0..n {
        for ch in 0..c {
            for p in 0..h * w {
                out[(g * h * w + p) * c + ch] = t.data[(g * c + ch) * h * w + p];
            }
        }
    }
    Ok(out)
}

/// `unet`: the global encoder on zeros and on the global latents, then the
/// UNet on the case's guidance batch `[uncond…, cond…]` contexts.
pub fn unet(case: &Case, m: &mut ModelCache) -> CaseResult {
    let model = m.model(case)?;
    let sample = case.tensor("sample")?;
    let [items, _, _, h, w] = sample.shape[..] else {
        return Err("`sample` is not [B,9,16,h,w]".into());
    };
    let globals = case.tensor("global_latents")?;
    let per_clip = 16 * LATENT_CHANNELS * h * w;
    let clips = globals.data.len() / per_clip;
    let (zero, tokens, dim) = model
        .global_context(&vec![0.0; per_clip], (h, w), &Cancel::new())
        .map_err(engine)?;
    let mut conds = Vec::new();
    for k in 0..clips {
        let (cond, _, _) = model
            .global_context(
                &globals.data[k * per_clip..(k + 1) * per_clip],
                (h, w),
                &Cancel::new(),
            )
            .map_err(engine)?;
        conds.push(cond);
    }
    let zero_all = zero.repeat(clips);
    let cond_all = conds.concat();
    let mut worst = 0f64;
    worst = worst.max(compare_slices(
        "context_uncond",
        &zero_all,
        &tokens_from_nchw(case.tensor("context_uncond")?)?,
        GRAPH_TOLERANCE,
    )?);
    worst = worst.max(compare_slices(
        "context_cond",
        &cond_all,
        &tokens_from_nchw(case.tensor("context_cond")?)?,
        GRAPH_TOLERANCE,
    )?);

    // The official order: the unconditional groups (zero context) first, then the conditional ones.
    let groups = case.u64("do_classifier")? as usize;
    if clips == 0 || items != groups * clips {
        return Err(format!(
            "{items} batch items do not make {groups} groups of {clips} clips"
        ));
    }
    let mut context = Vec::new();
    for group in 0..groups {
        context.extend_from_slice(if group < groups / 2 {
            &zero_all
        } else {
            &cond_all
        });
    }
    let timestep = case.u64("timestep")? as i64;
    let fps = case.f64("fps")? as i64;
    let mut output = Vec::new();
    model
        .unet(
            &sample.data,
            items,
            (h, w),
            timestep,
            fps,
            &context,
            (tokens, dim),
            &mut output,
            &Cancel::new(),
        )
        .map_err(engine)?;
    Ok(worst.max(compare(case, "output", &output, GRAPH_TOLERANCE)?))
}

/// `vae`: posterior mean of `images`, decode of `latents` (both unscaled).
pub fn vae(case: &Case, m: &mut ModelCache) -> CaseResult {
    let model = m.model(case)?;
    let images = case.tensor("images")?;
    let [n, _, height, width] = images.shape[..] else {
        return Err("`images` is not [N,3,H,W]".into());
    };
    let mean = model
        .encode(&images.data, n, (height, width), &Cancel::new())
        .map_err(engine)?;
    let worst = compare(case, "latent_mean", &mean, GRAPH_TOLERANCE)?;
    let latents = case.tensor("latents")?;
    let [n, _, h, w] = latents.shape[..] else {
        return Err("`latents` is not [N,4,h,w]".into());
    };
    let decoded = model
        .decode(&latents.data, n, (h, w), &Cancel::new())
        .map_err(engine)?;
    Ok(worst.max(compare(case, "decoded", &decoded, GRAPH_TOLERANCE)?))
}

/// The case's denoising parameters (the seed is unused: cases give the noise).
pub(crate) fn case_params(case: &Case) -> Result<DenoiseParams, String> {
    Ok(DenoiseParams {
        steps: case.u64("steps")? as u32,
        scheduler: SchedulerKind::from_name(case.str("scheduler")?).map_err(engine)?,
        guidance_scale: case.f64("guidance_scale")? as f32,
        global_guidance_scale: case.f64("global_guidance_scale")? as f32,
        seed: 0,
    })
}

/// A denoiser with the case's denoising parameters and scheduler configuration.
pub(crate) fn denoiser(case: &Case, model: Arc<Model>) -> Result<Denoiser, String> {
    let params = case_params(case)?;
    match case.json.get("scheduler_config") {
        Some(config) => Denoiser::with_scheduler_config(model, &params, config),
        None => Denoiser::new(model, &params),
    }
    .map_err(engine)
}

fn units(t: &Tensor) -> Vec<f32> {
    t.data.iter().map(|&v| unit_from_u8(v as u8)).collect()
}

/// `[c,f,H,W]` → `[f,c,H,W]`.
fn frames_first(data: &[f32], channels: usize, frames: usize, plane: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for c in 0..channels {
        for f in 0..frames {
            out[(f * channels + c) * plane..][..plane]
                .copy_from_slice(&data[(c * frames + f) * plane..][..plane]);
        }
    }
    out
}

/// `[n,3,C,C]` → `[n,C,C,3]`.
pub(crate) fn channels_last(data: &[f32], plane: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for (k, v) in data.iter().enumerate() {
        let (image, c, p) = (k / (3 * plane), k / plane % 3, k % plane);
        out[(image * plane + p) * 3 + c] = *v;
    }
    out
}

/// The canvas side of a `[1,1,C,C]` mask.
pub(crate) fn canvas_of(mask: &Tensor) -> Result<usize, String> {
    match mask.shape[..] {
        [1, 1, a, b] if a == b && check_canvas_side(a).is_ok() => Ok(a),
        _ => Err(format!(
            "`mask` of shape {:?} is not [1,1,C,C] with C a multiple of 8",
            mask.shape
        )),
    }
}

/// `window`: one official window from the case's frames, guides and noise.
pub fn window(case: &Case, m: &mut ModelCache) -> Result<Pass, String> {
    let model = m.model(case)?;
    let mask = case.tensor("mask")?;
    let canvas = canvas_of(mask)?;
    let (h, w, pixels) = (canvas / 8, canvas / 8, canvas * canvas);
    let init = frames_first(&units(case.tensor("init_frames_u8")?), 3, FRAMES, pixels);
    let masked = frames_first(&units(case.tensor("masked_frames_u8")?), 3, FRAMES, pixels);
    let cancel = Cancel::new();
    let size = (canvas, canvas);
    let init_latents =
        window::encode_scaled(&model, &init, FRAMES, size, &cancel).map_err(engine)?;
    let masked_latents =
        window::encode_scaled(&model, &masked, FRAMES, size, &cancel).map_err(engine)?;
    let constants = WindowConstants::new(&model, canvas, &mask.data, &cancel).map_err(engine)?;
    let context = GuidanceContext::from_frames(
        &model,
        &constants,
        &units(case.tensor("global_frames_u8")?),
        &cancel,
    )
    .map_err(engine)?;
    let guides = &case.tensor("guide_latents")?.data;
    let mut guide = [false; FRAMES];
    for g in case.json["guide_frames"]
        .as_array()
        .ok_or("case.json has no `guide_frames` list")?
    {
        let g = g
            .as_u64()
            .filter(|&g| (g as usize) < FRAMES)
            .ok_or("a guide frame is not a position 0..16")?;
        guide[g as usize] = true;
    }
    let frame_len = LATENT_CHANNELS * h * w;
    let latents = WindowLatents {
        init: std::array::from_fn(|f| frame_of(&init_latents, f, frame_len)),
        condition: std::array::from_fn(|f| {
            frame_of(
                if guide[f] { guides } else { &masked_latents },
                f,
                frame_len,
            )
        }),
        guide,
        uncond: &constants.uncond,
        mask: &constants.mask,
    };
    let fps = case.f64("fps")?.floor() as i64;
    let mut denoiser = denoiser(case, model.clone())?;
    let noise = &case.tensor("noise")?.data;
    let final_latents = denoiser
        .run(&latents, &context, noise, (h, w), fps, &cancel)
        .map_err(engine)?;
    let latent_err = compare(case, "final_latents", &final_latents, PIPELINE_TOLERANCE)?;
    let per_frame = frames_first(&final_latents, LATENT_CHANNELS, FRAMES, h * w);
    let images =
        window::decode_images(&model, &per_frame, FRAMES, (h, w), &cancel).map_err(engine)?;
    let images = channels_last(&images, pixels);
    let image_err = compare(case, "images", &images, PIPELINE_TOLERANCE)?;
    Ok(Pass::of_parts(
        vec![("final_latents", latent_err), ("images", image_err)],
        PIPELINE_TOLERANCE,
    ))
}

fn frame_of(v: &[f32], f: usize, frame_len: usize) -> &[f32] {
    &v[f * frame_len..(f + 1) * frame_len]
}
