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
//!   (each is the 3-way formula with the unused scale at 1; `guidance.rs`);
//! - strength 1.0: x = add_noise(VAE(init), noise, t_init), then one UNet call
//!   and one scheduler step per loop timestep; the global context is computed
//!   once per clip and reused by every step (`context.rs`).
//!
//! Every window of a run starts from the same seeded noise, as the official
//! code (which re-seeds per window) does.

mod context;
mod guidance;
mod resident;

use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

pub use context::{GuidanceContext, WindowConstants, decode_images, encode_scaled, latent_mask};
use guidance::{Item, combine_predictions, guidance_items};

use super::cancel::Cancel;
use super::error::{EngineError, Result};
use super::limits::{self, check_steps};
use super::model::{BoundUnet, Model, UnetConstants};
use super::scheduler::{Scheduler, SchedulerKind};

/// Frames per window.
pub const FRAMES: usize = 16;
/// Latent channels.
pub const LATENT_CHANNELS: usize = 4;
/// UNet input channels: noisy latent, condition latent, mask.
const UNET_CHANNELS: usize = 2 * LATENT_CHANNELS + 1;

/// Denoising parameters of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct DenoiseParams {
    pub steps: u32,
    pub scheduler: SchedulerKind,
    pub guidance_scale: f32,
    pub global_guidance_scale: f32,
    pub seed: u64,
}

impl Default for DenoiseParams {
    fn default() -> Self {
        DenoiseParams {
            steps: limits::DEFAULT_STEPS,
            scheduler: SchedulerKind::Pndm,
            guidance_scale: limits::DEFAULT_GUIDANCE_SCALE as f32,
            global_guidance_scale: limits::DEFAULT_GLOBAL_GUIDANCE_SCALE as f32,
            seed: limits::DEFAULT_SEED,
        }
    }
}

impl DenoiseParams {
    /// Checks the steps and that both scales are finite.
    pub fn validate(&self) -> Result<()> {
        check_steps(self.steps)?;
        for (name, v) in [
            ("guidance scale", self.guidance_scale),
            ("global guidance scale", self.global_guidance_scale),
        ] {
            if !v.is_finite() {
                return Err(EngineError::InvalidInput(format!(
                    "the {name} {v} is not a finite number"
                )));
            }
        }
        Ok(())
    }
}

/// The seeded starting noise of every window, `[4,16,canvas/8,canvas/8]`:
/// `StdRng::seed_from_u64(seed)` drawing standard normal f32 values in order.
pub fn window_noise(seed: u64, canvas: u32) -> Vec<f32> {
    let latent = (canvas / limits::LATENT_FACTOR) as usize;
    let mut rng = StdRng::seed_from_u64(seed);
    (0..LATENT_CHANNELS * FRAMES * latent * latent)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect()
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

/// Runs windows with one model and one set of denoising parameters, reusing
/// its buffers from window to window and from step to step. Several windows
/// can run as one batch (`run_many`): their items share every U-Net call.
pub struct Denoiser {
    model: Arc<Model>,
    scheduler: Scheduler,
    /// One scheduler (and its multistep memory) per window of a batch.
    schedulers: Vec<Scheduler>,
    scales: (f32, f32),
    items: &'static [Item],
    /// The U-Net input of every item of every window, `[windows*items,9,16,h,w]`.
    sample: Vec<f32>,
    /// The context of every item, one after the other (`[T_i,D]` each).
    context: Vec<f32>,
    /// The tokens of each item's context (fewer for the zero context, see
    /// `WindowConstants::zero_block`, when it is used).
    item_tokens: Vec<usize>,
    /// Where each item's prediction lies: its call and its place in that call.
    slots: Vec<(usize, usize)>,
    /// Whether the items that take the zero context send one token block.
    short_zero_context: bool,
    /// The U-Net output of each call, `max_batch` items (`[n,4,16,h,w]`) each,
    /// read in place by the guidance formula.
    predictions: Vec<Vec<f32>>,
    eps: Vec<f32>,
    timesteps: Vec<i64>,
    /// Batch items per UNet call: all of them on CUDA; one on the CPU, where a
    /// bigger batch is not faster and multiplies the peak memory of attention.
    max_batch: usize,
    /// Ready windows the clip scheduler may hand over as one batch.
    windows_per_batch: usize,
    /// The latents of one bound call's items at one step.
    step_latents: Vec<f32>,
    /// Bytes the U-Net calls copied between host and ONNX Runtime memory so far.
    transfer_bytes: u64,
    /// Whether the whole loop of a batch whose items fit one U-Net call runs
    /// in ONNX Runtime's memory (`resident.rs`): on by default on a GPU.
    keep_on_device: bool,
}

/// What every U-Net call of a window shares: the latent size, the fps input
/// and the context's width.
struct CallShape {
    latent: (usize, usize),
    fps: i64,
    dim: usize,
}

/// One U-Net call of a batch: `n` items from `first`, contexts of `tokens`
/// tokens from `context_at` in the context buffer.
struct UnetCall {
    first: usize,
    n: usize,
    tokens: usize,
    context_at: usize,
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
        params.validate()?;
        let scheduler = Scheduler::from_json(params.scheduler, params.steps as usize, config)?;
        let on_cuda = matches!(model.provider_in_use(), "cuda" | "tensorrt");
        Ok(Denoiser {
            model,
            scheduler,
            schedulers: Vec::new(),
            scales: (params.guidance_scale, params.global_guidance_scale),
            items: guidance_items(params.guidance_scale, params.global_guidance_scale),
            sample: Vec::new(),
            context: Vec::new(),
            item_tokens: Vec::new(),
            slots: Vec::new(),
            short_zero_context: !on_cuda,
            predictions: Vec::new(),
            eps: Vec::new(),
            timesteps: Vec::new(),
            max_batch: if on_cuda { usize::MAX } else { 1 },
            windows_per_batch: 1,
            step_latents: Vec::new(),
            transfer_bytes: 0,
            keep_on_device: on_cuda,
        })
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Sets the batching: at most `items_per_call` guidance items per U-Net
    /// call, and up to `windows_per_batch` windows denoised together (both ≥ 1).
    /// With one item per call, the items that take the zero context send it
    /// with each token once; with more, every item sends the whole context, so
    /// that the items of a call have contexts of one size.
    pub fn set_batching(&mut self, items_per_call: usize, windows_per_batch: usize) {
        self.max_batch = items_per_call.max(1);
        self.windows_per_batch = windows_per_batch.max(1);
        self.short_zero_context = self.max_batch == 1;
    }

    /// Whether a batch whose items fit one U-Net call keeps its whole loop in
    /// ONNX Runtime's memory, where the backend can (on by default on a GPU;
    /// on the CPU the same code runs, agreeing with the host's steps to float
    /// rounding).
    pub fn set_keep_on_device(&mut self, keep: bool) {
        self.keep_on_device = keep;
    }

    /// Bytes the U-Net calls of this denoiser copied between host memory and
    /// ONNX Runtime's (a GPU's, or the host's on the CPU) so far: with IO
    /// binding, each window's constants once and each step's latents,
    /// timestep and prediction; without, every input and output of every call.
    pub fn transfer_bytes(&self) -> u64 {
        self.transfer_bytes
    }

    /// Ready windows the clip scheduler may hand this denoiser as one batch.
    pub fn windows_per_batch(&self) -> usize {
        self.windows_per_batch
    }

    /// Denoises one window of `h × w` latents from `noise` `[4,16,h,w]`; returns the
    /// final scaled latents `[4,16,h,w]`. `fps` is the UNet's fps input. Checks
    /// `cancel` before every UNet call.
    pub fn run(
        &mut self,
        window: &WindowLatents<'_>,
        context: &GuidanceContext,
        noise: &[f32],
        latent: (usize, usize),
        fps: i64,
        cancel: &Cancel,
    ) -> Result<Vec<f32>> {
        let mut all = self.run_many(
            std::slice::from_ref(window),
            context,
            noise,
            latent,
            fps,
            cancel,
        )?;
        Ok(all.pop().expect("one window in, one out"))
    }

    /// Denoises several windows of one clip (same context, noise and fps) as
    /// one batch: each U-Net call takes up to `max_batch` items of any of them.
    /// The result of each window equals its `run` (items are independent).
    pub fn run_many(
        &mut self,
        windows: &[WindowLatents<'_>],
        context: &GuidanceContext,
        noise: &[f32],
        (h, w): (usize, usize),
        fps: i64,
        cancel: &Cancel,
    ) -> Result<Vec<Vec<f32>>> {
        let plane = h * w;
        let frame_len = LATENT_CHANNELS * plane;
        let latent_len = frame_len * FRAMES;
        for window in windows {
            check_window(window, noise, context, frame_len, plane, latent_len)?;
        }
        let (t_init, loop_timesteps) = self.scheduler.run_timesteps();
        self.timesteps = loop_timesteps;
        self.schedulers.clear();
        self.schedulers
            .resize_with(windows.len(), || self.scheduler.clone());
        let mut latents = Vec::with_capacity(windows.len());
        for (window, scheduler) in windows.iter().zip(&mut self.schedulers) {
            // x0 in [4,16,h,w] from the per-position init latents ([4,h,w] each).
            let mut x0 = vec![0.0f32; latent_len];
            scatter_frames(&mut x0, &window.init, plane);
            scheduler.reset();
            latents.push(scheduler.add_noise(&x0, noise, t_init)?);
        }

        self.fill_constant_inputs(windows, context, plane);
        self.eps.resize(latent_len, 0.0);
        let calls = self.plan_calls(context.dim);
        self.slots.clear();
        for (call, c) in calls.iter().enumerate() {
            self.slots.extend((0..c.n).map(|place| (call, place)));
        }
        self.predictions.resize_with(calls.len(), Vec::new);
        let model = self.model.clone();
        let shape = CallShape {
            latent: (h, w),
            fps,
            dim: context.dim,
        };
        if let Some(done) = self.run_resident(&model, &calls, &shape, &latents, cancel)? {
            return Ok(done);
        }
        let mut bound = self.bind_calls(&model, &calls, &shape)?;
        let items = self.items.len();
        for step in 0..self.timesteps.len() {
            let t = self.timesteps[step];
            cancel.check()?;
            match bound.as_mut() {
                Some(bound) => self.predict_bound(bound, &calls, &latents, t, cancel)?,
                None => self.predict(&calls, &latents, &shape, t, cancel)?,
            }
            let (predictions, slots) = (&self.predictions, &self.slots);
            for (window, latent) in latents.iter_mut().enumerate() {
                let part = |i: usize| {
                    let (call, place) = slots[window * items + i];
                    &predictions[call][place * latent_len..(place + 1) * latent_len]
                };
                combine_predictions(self.items, self.scales, part, &mut self.eps);
                self.schedulers[window].step_in_place(&self.eps, t, latent)?;
            }
        }
        if let Some(bound) = &bound {
            self.transfer_bytes += bound.iter().map(|b| b.transfer_bytes()).sum::<u64>();
        }
        Ok(latents)
    }

    /// The U-Net calls of the batch: up to `max_batch` consecutive items whose
    /// contexts have one size (items are independent, so the split does not
    /// change the result).
    fn plan_calls(&self, dim: usize) -> Vec<UnetCall> {
        let batch = self.item_tokens.len();
        let mut calls = Vec::new();
        let (mut first, mut context_at) = (0, 0);
        while first < batch {
            let tokens = self.item_tokens[first];
            let n = self.item_tokens[first..]
                .iter()
                .take(self.max_batch)
                .take_while(|&&t| t == tokens)
                .count();
            calls.push(UnetCall {
                first,
                n,
                tokens,
                context_at,
            });
            first += n;
            context_at += n * tokens * dim;
        }
        calls
    }

    /// Every call with its constant inputs bound (IO binding), or `None` where
    /// the model's backend does not bind.
    fn bind_calls<'m>(
        &self,
        model: &'m Model,
        calls: &[UnetCall],
        &CallShape { latent, fps, dim }: &CallShape,
    ) -> Result<Option<Vec<Box<dyn BoundUnet + 'm>>>> {
        let item_len = UNET_CHANNELS * FRAMES * latent.0 * latent.1;
        let mut bound = Vec::with_capacity(calls.len());
        for c in calls {
            let constants = UnetConstants {
                sample: &self.sample[c.first * item_len..(c.first + c.n) * item_len],
                batch: c.n,
                latent,
                fps,
                context: &self.context[c.context_at..c.context_at + c.n * c.tokens * dim],
                tokens_dim: (c.tokens, dim),
            };
            match model.bind_unet(&constants)? {
                Some(call) => bound.push(call),
                None => return Ok(None),
            }
        }
        Ok(Some(bound))
    }

    /// One step through the bound calls: only each item's latents go in.
    fn predict_bound(
        &mut self,
        bound: &mut [Box<dyn BoundUnet + '_>],
        calls: &[UnetCall],
        latents: &[Vec<f32>],
        t: i64,
        cancel: &Cancel,
    ) -> Result<()> {
        let items = self.items.len();
        for ((call, c), prediction) in bound.iter_mut().zip(calls).zip(&mut self.predictions) {
            self.step_latents.clear();
            for item in c.first..c.first + c.n {
                self.step_latents.extend_from_slice(&latents[item / items]);
            }
            call.step(&self.step_latents, t, prediction, cancel)?;
        }
        Ok(())
    }

    /// One step with every input sent: each call's output in its own buffer.
    fn predict(
        &mut self,
        calls: &[UnetCall],
        latents: &[Vec<f32>],
        &CallShape { latent, fps, dim }: &CallShape,
        t: i64,
        cancel: &Cancel,
    ) -> Result<()> {
        let item_len = UNET_CHANNELS * FRAMES * latent.0 * latent.1;
        self.fill_latents(latents, LATENT_CHANNELS * FRAMES * latent.0 * latent.1);
        for (c, prediction) in calls.iter().zip(&mut self.predictions) {
            self.model.unet(
                &self.sample[c.first * item_len..(c.first + c.n) * item_len],
                c.n,
                latent,
                t,
                fps,
                &self.context[c.context_at..c.context_at + c.n * c.tokens * dim],
                (c.tokens, dim),
                prediction,
                cancel,
            )?;
            self.transfer_bytes += self.model.unet_transfer_bytes(c.n, latent, (c.tokens, dim));
        }
        Ok(())
    }

    /// Puts each window's latents in the first channels of its items' U-Net input.
    fn fill_latents(&mut self, latents: &[Vec<f32>], latent_len: usize) {
        let item_len = self.sample.len() / self.item_tokens.len().max(1);
        let items = self.items.len();
        for (item, sample) in self.sample.chunks_exact_mut(item_len).enumerate() {
            sample[..latent_len].copy_from_slice(&latents[item / items]);
        }
    }

    /// The condition and mask channels and the context of every batch item of
    /// every window: the same at every step.
    fn fill_constant_inputs(
        &mut self,
        windows: &[WindowLatents<'_>],
        context: &GuidanceContext,
        plane: usize,
    ) {
        let item_len = UNET_CHANNELS * FRAMES * plane;
        let latent_len = LATENT_CHANNELS * FRAMES * plane;
        self.sample.clear();
        self.sample
            .resize(windows.len() * self.items.len() * item_len, 0.0);
        self.context.clear();
        self.item_tokens.clear();
        let mut samples = self.sample.chunks_exact_mut(item_len);
        for window in windows {
            for &item in self.items {
                let sample = samples.next().expect("sized for every item");
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
                let ctx: &[f32] = match (item, &context.zero_block) {
                    (Item::MaskedGlobalContext, _) => &context.global,
                    (_, Some(block)) if self.short_zero_context => block,
                    _ => &context.zero,
                };
                self.context.extend_from_slice(ctx);
                self.item_tokens.push(ctx.len() / context.dim);
            }
        }
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
mod tests;
