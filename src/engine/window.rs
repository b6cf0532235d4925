// SPDX-License-Identifier: MPL-2.0
//! One 16-frame M3DDM window, as the official pipeline computes it
//! (`outpainting_with_random_masked_latent_inference_bidirection`, see
//! `../shared/golden/README.md`):
//!
//! - latents are VAE posterior means scaled by the manifest's `latent_scale`;
//!   the unconditional condition is the VAE of an all −1 image;
//! - the UNet input is `[noisy (4), condition (4), mask (1)]`; a guide frame
//!   (a latent made by an earlier window) replaces the condition in every item
//!   and gets mask 0;
//! - the guidance batch items are e0 = (uncond condition, mask 1, enc(0)),
//!   e1 = (masked condition, mask, enc(0)), e3 = (masked condition, mask,
//!   enc(global)); the official e2 is never used, so it is never computed:
//!   g > 1 and G > 1: `[e0,e1,e3]`, eps = e0 + g(e1−e0) + G(e3−e1);
//!   g > 1 only (the official 2-way branch): `[e0,e3]`, eps = e0 + g(e3−e0);
//!   G > 1 only: `[e1,e3]`, eps = e1 + G(e3−e1); neither: `[e3]`
//!   (each is the 3-way formula with the unused scale at 1);
//! - strength 1.0: x = add_noise(VAE(init), noise, t_init), then one UNet call
//!   and one scheduler step per loop timestep; the global context is computed
//!   once and reused by every step.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::error::{EngineError, Result};
use super::model::Model;
use super::scheduler::Scheduler;
use super::stream::DenoiseParams;

/// Frames per window.
pub const FRAMES: usize = 16;
/// Latent channels.
pub const LATENT_CHANNELS: usize = 4;
/// UNet input channels: noisy latent, condition latent, mask.
const UNET_CHANNELS: usize = 2 * LATENT_CHANNELS + 1;
/// Images per VAE call (results do not depend on it: each image is independent).
const VAE_BATCH: usize = 8;

/// The official pixel normalisation of a u8 value: `(v/255 − 0.5)/0.5`.
pub fn unit_from_u8(v: u8) -> f32 {
    (v as f32 / 255.0 - 0.5) / 0.5
}

/// The official output conversion of a decoded value: `clamp(x/2 + 0.5, 0, 1)`.
pub fn image_from_decoded(x: f32) -> f32 {
    (x / 2.0 + 0.5).clamp(0.0, 1.0)
}

/// Encodes `n` images `[n,3,H,W]` in [-1,1] to scaled latents `[n,4,H/8,W/8]`.
pub fn encode_scaled(
    model: &Model,
    images: &[f32],
    n: usize,
    height: usize,
    width: usize,
) -> Result<Vec<f32>> {
    if !height.is_multiple_of(8) || !width.is_multiple_of(8) || height == 0 || width == 0 {
        return Err(EngineError::InvalidInput(format!(
            "a {width}×{height} canvas is not a positive multiple of 8"
        )));
    }
    let image_len = 3 * height * width;
    let mut out = Vec::with_capacity(n * LATENT_CHANNELS * (height / 8) * (width / 8));
    for chunk in images[..n * image_len].chunks(VAE_BATCH * image_len) {
        out.extend(model.encode(chunk, chunk.len() / image_len, height, width)?);
    }
    let scale = model.latent_scale();
    out.iter_mut().for_each(|v| *v *= scale);
    Ok(out)
}

/// Decodes `n` scaled latents `[n,4,h,w]` to images `[n,3,8h,8w]` in [0,1].
pub fn decode_images(
    model: &Model,
    latents: &[f32],
    n: usize,
    h: usize,
    w: usize,
) -> Result<Vec<f32>> {
    let latent_len = LATENT_CHANNELS * h * w;
    let inv_scale = 1.0 / model.latent_scale();
    let mut out = Vec::with_capacity(n * 3 * 64 * h * w);
    for chunk in latents[..n * latent_len].chunks(VAE_BATCH * latent_len) {
        let unscaled: Vec<f32> = chunk.iter().map(|v| v * inv_scale).collect();
        out.extend(
            model
                .decode(&unscaled, chunk.len() / latent_len, h, w)?
                .into_iter()
                .map(image_from_decoded),
        );
    }
    Ok(out)
}

/// The scaled latent `[4,h,w]` of an all −1 image (the unconditional condition).
pub fn uncond_latent(model: &Model, height: usize, width: usize) -> Result<Vec<f32>> {
    encode_scaled(model, &vec![-1.0; 3 * height * width], 1, height, width)
}

/// The pixel mask `[H*W]` (1 = generate) at latent size, as PyTorch's default
/// nearest interpolation does it for a factor of 8: latent (i, j) = pixel (8i, 8j).
pub fn latent_mask(mask: &[f32], height: usize, width: usize) -> Result<Vec<f32>> {
    if mask.len() != height * width || !height.is_multiple_of(8) || !width.is_multiple_of(8) {
        return Err(EngineError::InvalidInput(format!(
            "a mask of {} values does not fit a {width}×{height} canvas divisible by 8",
            mask.len()
        )));
    }
    let (h, w) = (height / 8, width / 8);
    Ok((0..h * w)
        .map(|k| mask[(k / w) * 8 * width + (k % w) * 8])
        .collect())
}

/// The global image encoder's output on all-zero latents and on the 16 global
/// latents: computed once per window or clip, reused by every step.
pub struct GuidanceContext {
    pub zero: Vec<f32>,
    pub global: Vec<f32>,
    pub tokens: usize,
    pub dim: usize,
}

impl GuidanceContext {
    /// From the 16 scaled global latents `[16,4,h,w]`.
    pub fn new(
        model: &Model,
        global_latents: &[f32],
        h: usize,
        w: usize,
    ) -> Result<GuidanceContext> {
        let (global, tokens, dim) = model.global_context(global_latents, h, w)?;
        let (zero, zt, zd) = model.global_context(&vec![0.0; global_latents.len()], h, w)?;
        if (zt, zd) != (tokens, dim) {
            return Err(EngineError::Inference(
                "the global encoder's output shape depends on its input values".into(),
            ));
        }
        Ok(GuidanceContext {
            zero,
            global,
            tokens,
            dim,
        })
    }

    /// From the 16 global frames `[16,3,H,W]` in [-1,1].
    pub fn from_frames(
        model: &Model,
        frames: &[f32],
        height: usize,
        width: usize,
    ) -> Result<GuidanceContext> {
        let latents = encode_scaled(model, frames, FRAMES, height, width)?;
        GuidanceContext::new(model, &latents, height / 8, width / 8)
    }
}

/// The latents of one window, per position (`[4,h,w]` each, scaled).
pub struct WindowLatents<'a> {
    /// VAE(init frame): the start of the denoising.
    pub init: [&'a [f32]; FRAMES],
    /// The condition: VAE(masked frame), or the guide latent where `guide`.
    pub condition: [&'a [f32]; FRAMES],
    pub guide: [bool; FRAMES],
    /// The latent of an all −1 image.
    pub uncond: &'a [f32],
    /// The mask at latent size (`[h*w]`, 1 = generate).
    pub mask: &'a [f32],
}

/// One item of the guidance batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    /// Unconditional condition, mask 1, context enc(0).
    Uncond,
    /// Masked condition, context enc(0).
    MaskedZeroContext,
    /// Masked condition, context enc(global).
    MaskedGlobalContext,
}

/// The items to run and how their predictions combine.
fn guidance_items(guidance_scale: f32, global_guidance_scale: f32) -> &'static [Item] {
    use Item::*;
    match (guidance_scale > 1.0, global_guidance_scale > 1.0) {
        (true, true) => &[Uncond, MaskedZeroContext, MaskedGlobalContext],
        (true, false) => &[Uncond, MaskedGlobalContext],
        (false, true) => &[MaskedZeroContext, MaskedGlobalContext],
        (false, false) => &[MaskedGlobalContext],
    }
}

/// Runs windows with one model and one set of denoising parameters, reusing
/// its buffers from window to window.
pub struct Denoiser {
    model: Arc<Model>,
    scheduler: Scheduler,
    guidance_scale: f32,
    global_guidance_scale: f32,
    items: &'static [Item],
    sample: Vec<f32>,
    context: Vec<f32>,
    prediction: Vec<f32>,
    part: Vec<f32>,
    eps: Vec<f32>,
    /// Batch items per UNet call: all of them on CUDA; one on the CPU, where a
    /// bigger batch is not faster and multiplies the peak memory of attention.
    max_batch: usize,
}

impl Denoiser {
    /// A denoiser with the scheduler configuration of the model's manifest.
    pub fn new(model: Arc<Model>, params: &DenoiseParams) -> Result<Denoiser> {
        let config = model.manifest().scheduler_config.clone();
        Denoiser::with_scheduler_config(model, params, &config)
    }

    /// A denoiser with the given scheduler configuration (diffusers keys).
    pub fn with_scheduler_config(
        model: Arc<Model>,
        params: &DenoiseParams,
        config: &serde_json::Value,
    ) -> Result<Denoiser> {
        if params.steps == 0 || params.steps > 1000 {
            return Err(EngineError::InvalidInput(format!(
                "{} denoising steps: use 1 to 1000",
                params.steps
            )));
        }
        for (name, v) in [
            ("guidance scale", params.guidance_scale),
            ("global guidance scale", params.global_guidance_scale),
        ] {
            if !v.is_finite() {
                return Err(EngineError::InvalidInput(format!(
                    "the {name} {v} is not a finite number"
                )));
            }
        }
        let scheduler = Scheduler::from_json(params.scheduler, params.steps as usize, config)?;
        let model_on_cuda = model.provider_in_use() == "cuda";
        Ok(Denoiser {
            model,
            scheduler,
            guidance_scale: params.guidance_scale,
            global_guidance_scale: params.global_guidance_scale,
            items: guidance_items(params.guidance_scale, params.global_guidance_scale),
            sample: Vec::new(),
            context: Vec::new(),
            prediction: Vec::new(),
            part: Vec::new(),
            eps: Vec::new(),
            max_batch: if model_on_cuda { usize::MAX } else { 1 },
        })
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Denoises one window of `h × w` latents from `noise` `[4,16,h,w]`; returns the
    /// final scaled latents `[4,16,h,w]`. `fps` is the UNet's fps input. Checks
    /// `cancel` before every UNet call.
    pub fn run(
        &mut self,
        window: &WindowLatents<'_>,
        context: &GuidanceContext,
        noise: &[f32],
        (h, w): (usize, usize),
        fps: i64,
        cancel: &AtomicBool,
    ) -> Result<Vec<f32>> {
        let plane = h * w;
        let frame_len = LATENT_CHANNELS * plane;
        let latent_len = frame_len * FRAMES;
        check_window(window, noise, context, frame_len, plane, latent_len)?;

        // x0 in [4,16,h,w] from the per-position init latents ([4,h,w] each).
        let mut x0 = vec![0.0f32; latent_len];
        scatter_frames(&mut x0, &window.init, plane);
        let (t_init, loop_timesteps) = self.scheduler.run_timesteps();
        self.scheduler.reset();
        let mut latents = self.scheduler.add_noise(&x0, noise, t_init)?;

        self.fill_constant_inputs(window, context, plane);
        let batch = self.items.len();
        for &t in &loop_timesteps {
            if cancel.load(Ordering::Relaxed) {
                return Err(EngineError::Cancelled);
            }
            for b in 0..batch {
                let item = b * UNET_CHANNELS * FRAMES * plane;
                self.sample[item..item + latent_len].copy_from_slice(&latents);
            }
            self.predict(batch, (h, w), t, fps, context)?;
            let (g, gg) = (self.guidance_scale, self.global_guidance_scale);
            combine_predictions(
                self.items,
                g,
                gg,
                &self.prediction,
                latent_len,
                &mut self.eps,
            );
            self.scheduler.step_in_place(&self.eps, t, &mut latents)?;
        }
        Ok(latents)
    }

    /// The UNet on the whole batch, `max_batch` items per call (items are
    /// independent, so the split does not change the result).
    fn predict(
        &mut self,
        batch: usize,
        (h, w): (usize, usize),
        t: i64,
        fps: i64,
        context: &GuidanceContext,
    ) -> Result<()> {
        let item_len = UNET_CHANNELS * FRAMES * h * w;
        let context_len = context.tokens * context.dim;
        let output_len = LATENT_CHANNELS * FRAMES * h * w;
        self.prediction.resize(batch * output_len, 0.0);
        for first in (0..batch).step_by(self.max_batch) {
            let n = self.max_batch.min(batch - first);
            let sample = &self.sample[first * item_len..(first + n) * item_len];
            let ctx = &self.context[first * context_len..(first + n) * context_len];
            self.model.unet(
                sample,
                n,
                h,
                w,
                t,
                fps,
                ctx,
                context.tokens,
                context.dim,
                &mut self.part,
            )?;
            self.prediction[first * output_len..(first + n) * output_len]
                .copy_from_slice(&self.part);
        }
        Ok(())
    }

    /// The condition and mask channels and the context of every batch item:
    /// the same at every step.
    fn fill_constant_inputs(
        &mut self,
        window: &WindowLatents<'_>,
        context: &GuidanceContext,
        plane: usize,
    ) {
        let item_len = UNET_CHANNELS * FRAMES * plane;
        let latent_len = LATENT_CHANNELS * FRAMES * plane;
        self.sample.clear();
        self.sample.resize(self.items.len() * item_len, 0.0);
        self.context.clear();
        for (b, &item) in self.items.iter().enumerate() {
            let sample = &mut self.sample[b * item_len..(b + 1) * item_len];
            let (condition, mask) = sample[latent_len..].split_at_mut(latent_len);
            let uncond = item == Item::Uncond;
            for f in 0..FRAMES {
                let source = if uncond && !window.guide[f] {
                    window.uncond
                } else {
                    window.condition[f]
                };
                scatter_frame(condition, source, f, plane);
                let mask_plane = &mut mask[f * plane..(f + 1) * plane];
                if window.guide[f] {
                    mask_plane.fill(0.0);
                } else if uncond {
                    mask_plane.fill(1.0);
                } else {
                    mask_plane.copy_from_slice(window.mask);
                }
            }
            let ctx = if item == Item::MaskedGlobalContext {
                &context.global
            } else {
                &context.zero
            };
            self.context.extend_from_slice(ctx);
        }
    }
}

/// eps from the batch's predictions `[items.len(), latent_len]` (see the module notes).
fn combine_predictions(
    items: &[Item],
    g: f32,
    gg: f32,
    prediction: &[f32],
    latent_len: usize,
    eps: &mut Vec<f32>,
) {
    let part = |i: usize| &prediction[i * latent_len..(i + 1) * latent_len];
    eps.clear();
    match items.len() {
        3 => eps.extend(
            part(0)
                .iter()
                .zip(part(1))
                .zip(part(2))
                .map(|((&e0, &e1), &e3)| e0 + g * (e1 - e0) + gg * (e3 - e1)),
        ),
        2 => {
            let scale = if items[0] == Item::Uncond { g } else { gg };
            eps.extend(
                part(0)
                    .iter()
                    .zip(part(1))
                    .map(|(&a, &b)| a + scale * (b - a)),
            );
        }
        _ => eps.extend_from_slice(part(0)),
    }
}

fn check_window(
    window: &WindowLatents<'_>,
    noise: &[f32],
    context: &GuidanceContext,
    frame_len: usize,
    plane: usize,
    latent_len: usize,
) -> Result<()> {
    let bad = |what: &str, got: usize, want: usize| {
        EngineError::InvalidInput(format!(
            "the window's {what} has {got} values where {want} are needed"
        ))
    };
    for latent in window
        .init
        .iter()
        .chain(&window.condition)
        .chain([&window.uncond])
    {
        if latent.len() != frame_len {
            return Err(bad("latent of a frame", latent.len(), frame_len));
        }
    }
    if window.mask.len() != plane {
        return Err(bad("mask", window.mask.len(), plane));
    }
    if noise.len() != latent_len {
        return Err(bad("noise", noise.len(), latent_len));
    }
    if context.zero.len() != context.tokens * context.dim
        || context.global.len() != context.zero.len()
    {
        return Err(bad(
            "global context",
            context.global.len(),
            context.tokens * context.dim,
        ));
    }
    Ok(())
}

/// Writes a `[4,h,w]` frame latent at frame `f` of a `[4,16,h,w]` tensor.
fn scatter_frame(dst: &mut [f32], frame: &[f32], f: usize, plane: usize) {
    for c in 0..LATENT_CHANNELS {
        let at = (c * FRAMES + f) * plane;
        dst[at..at + plane].copy_from_slice(&frame[c * plane..(c + 1) * plane]);
    }
}

fn scatter_frames(dst: &mut [f32], frames: &[&[f32]; FRAMES], plane: usize) {
    for (f, frame) in frames.iter().enumerate() {
        scatter_frame(dst, frame, f, plane);
    }
}

/// Reads frame `f` of a `[4,16,h,w]` tensor as a `[4,h,w]` latent.
pub fn gather_frame(src: &[f32], f: usize, plane: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(LATENT_CHANNELS * plane);
    for c in 0..LATENT_CHANNELS {
        let at = (c * FRAMES + f) * plane;
        out.extend_from_slice(&src[at..at + plane]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_normalisation_matches_the_official_formula() {
        assert_eq!(unit_from_u8(0), -1.0);
        assert_eq!(unit_from_u8(255), 1.0);
        assert!((unit_from_u8(128) - 0.003_921_628).abs() < 1e-7);
        assert_eq!(image_from_decoded(-3.0), 0.0);
        assert_eq!(image_from_decoded(0.5), 0.75);
        assert_eq!(image_from_decoded(2.0), 1.0);
    }

    #[test]
    fn latent_mask_takes_every_eighth_pixel() {
        // A 16×16 mask whose pixel (y, x) is y*16 + x: latent (i, j) is pixel (8i, 8j).
        let mask: Vec<f32> = (0..256).map(|v| v as f32).collect();
        assert_eq!(
            latent_mask(&mask, 16, 16).unwrap(),
            vec![0.0, 8.0, 128.0, 136.0]
        );
        assert!(latent_mask(&mask, 16, 8).is_err());
    }

    #[test]
    fn frames_scatter_and_gather_in_the_unet_layout() {
        let plane = 2;
        let frames: Vec<Vec<f32>> = (0..FRAMES)
            .map(|f| (0..8).map(|k| (f * 100 + k) as f32).collect())
            .collect();
        let refs: [&[f32]; FRAMES] = std::array::from_fn(|f| frames[f].as_slice());
        let mut tensor = vec![0.0; LATENT_CHANNELS * FRAMES * plane];
        scatter_frames(&mut tensor, &refs, plane);
        // Channel 1 of frame 3 sits at (1*16 + 3) * plane.
        assert_eq!(
            &tensor[(16 + 3) * plane..(16 + 3) * plane + 2],
            &[302.0, 303.0]
        );
        for (f, frame) in frames.iter().enumerate() {
            assert_eq!(&gather_frame(&tensor, f, plane), frame);
        }
    }

    #[test]
    fn guidance_runs_only_the_items_its_formula_uses() {
        use Item::*;
        assert_eq!(
            guidance_items(2.0, 4.0),
            &[Uncond, MaskedZeroContext, MaskedGlobalContext]
        );
        assert_eq!(guidance_items(2.0, 1.0), &[Uncond, MaskedGlobalContext]);
        assert_eq!(
            guidance_items(1.0, 4.0),
            &[MaskedZeroContext, MaskedGlobalContext]
        );
        assert_eq!(guidance_items(1.0, 1.0), &[MaskedGlobalContext]);
    }

    #[test]
    fn predictions_combine_by_the_official_formulas() {
        use Item::*;
        // Two values per item: e0 = [1, 0], e1 = [3, 1], e3 = [4, -1]; g = 2, G = 4.
        let mut eps = Vec::new();
        combine_predictions(
            &[Uncond, MaskedZeroContext, MaskedGlobalContext],
            2.0,
            4.0,
            &[1., 0., 3., 1., 4., -1.],
            2,
            &mut eps,
        );
        assert_eq!(eps, vec![9.0, -6.0]); // e0 + 2(e1 - e0) + 4(e3 - e1)
        combine_predictions(
            &[Uncond, MaskedGlobalContext],
            2.0,
            1.0,
            &[1., 0., 4., -1.],
            2,
            &mut eps,
        );
        assert_eq!(eps, vec![7.0, -2.0]); // e0 + 2(e3 - e0)
        combine_predictions(
            &[MaskedZeroContext, MaskedGlobalContext],
            1.0,
            4.0,
            &[3., 1., 4., -1.],
            2,
            &mut eps,
        );
        assert_eq!(eps, vec![7.0, -7.0]); // e1 + 4(e3 - e1)
        combine_predictions(&[MaskedGlobalContext], 1.0, 1.0, &[4., -1.], 2, &mut eps);
        assert_eq!(eps, vec![4.0, -1.0]);
    }
}
