// SPDX-License-Identifier: MPL-2.0
//! The official whole-clip run over a plan from `planner.rs` (the official
//! `inference.py` loop): windows in the plan's order, each with the fps input
//! floor(fps/stride) and the same starting noise; a frame's latent is kept
//! from the first window (and position) that produced it and is a guide in
//! every later window; a frame's image is the decode of the last window
//! holding it, and each frame's image is delivered exactly once. Frames are
//! VAE-encoded once per clip (the encoding is deterministic, so this equals
//! the official per-window encoding), and only the frames whose image a
//! window provides are decoded.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::error::{EngineError, Result, check_cancel};
use super::model::Model;
use super::planner::{ClipPlan, WINDOW_LEN};
use super::window::{
    self, Denoiser, FRAMES, GuidanceContext, LATENT_CHANNELS, WindowConstants, WindowLatents,
};

/// Which canvas image of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameImage {
    /// The canvas with the new area filled by the init fill.
    Init,
    /// The canvas with the new area black (−1).
    Masked,
    /// The whole source stretched to the canvas (global frames).
    Stretched,
}

/// The per-frame canvas images of a clip.
pub trait ClipFrames {
    /// Frames in the clip.
    fn len(&self) -> usize;
    /// Whether the clip has no frame.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes one image of `frame` as `[3,C,C]` floats in [-1,1] into `out`.
    fn write(&self, frame: usize, image: FrameImage, out: &mut [f32]) -> Result<()>;
}

/// Everything a clip run needs besides the denoiser.
pub struct ClipInput<'a> {
    pub plan: &'a ClipPlan,
    pub frames: &'a dyn ClipFrames,
    /// The run's constants: canvas side C, zero context, uncond latent, latent mask.
    pub constants: &'a WindowConstants,
    /// The starting noise `[4,16,C/8,C/8]` of every window.
    pub noise: &'a [f32],
    /// The clip's frame rate (the UNet's fps input is floor(fps/stride)).
    pub fps: f64,
}

/// What a clip run produced besides the images.
pub struct ClipOutput {
    /// Per frame, the kept scaled latent `[4,h,w]` (given or produced).
    pub latents: Vec<Option<Vec<f32>>>,
    pub windows_run: usize,
    pub window_time: Duration,
}

/// Runs the plan. `known` holds latents given before the run (a carried guide),
/// one entry per frame. `on_image(frame, image)` receives each frame's image
/// `[3,C,C]` in [0,1] once, as soon as it is final. Checks `cancel` between
/// windows and between denoising steps.
pub fn run_clip(
    denoiser: &mut Denoiser,
    input: &ClipInput<'_>,
    known: Vec<Option<Vec<f32>>>,
    on_image: &mut dyn FnMut(usize, &[f32]) -> Result<()>,
    cancel: &AtomicBool,
) -> Result<ClipOutput> {
    let plan = input.plan;
    let n = plan.total_frames;
    check_input(input, &known)?;
    let constants = input.constants;
    let canvas = constants.canvas;
    let (h, w) = (constants.latent_side(), constants.latent_side());
    let plane = h * w;
    let model = denoiser.model().clone();

    let mut encoder = FrameEncoder::new(model.clone(), input, n, cancel);
    let global_frames = encoder.read_frames(&plan.global_frames, FrameImage::Stretched)?;
    let context = GuidanceContext::from_frames(&model, constants, &global_frames, cancel)?;

    let mut latents = known;
    let mut windows_run = 0;
    let mut window_time = Duration::ZERO;
    for (index, win) in plan.windows.iter().enumerate() {
        check_cancel(cancel)?;
        let started = Instant::now();
        for (p, &f) in win.frames.iter().enumerate() {
            if win.guides[p] && latents[f].is_none() {
                return Err(EngineError::InvalidInput(format!(
                    "window {index} uses frame {f} as a guide before any latent of it exists"
                )));
            }
        }
        let conditioned: Vec<usize> = (0..WINDOW_LEN)
            .filter(|&p| !win.guides[p])
            .map(|p| win.frames[p])
            .collect();
        encoder.encode(&win.frames, FrameImage::Init)?;
        encoder.encode(&conditioned, FrameImage::Masked)?;
        let final_latents = {
            let window_latents = WindowLatents {
                init: std::array::from_fn(|p| encoder.latent(win.frames[p], FrameImage::Init)),
                condition: std::array::from_fn(|p| {
                    let f = win.frames[p];
                    if win.guides[p] {
                        latents[f].as_deref().unwrap_or(&[])
                    } else {
                        encoder.latent(f, FrameImage::Masked)
                    }
                }),
                guide: win.guides,
                uncond: &constants.uncond,
                mask: &constants.mask,
            };
            let fps = win.fps_input(input.fps);
            denoiser.run(&window_latents, &context, input.noise, (h, w), fps, cancel)?
        };
        for p in 0..FRAMES {
            if win.keeps[p] {
                latents[win.frames[p]] = Some(window::gather_frame(&final_latents, p, plane));
            }
        }
        let finished: Vec<(usize, usize)> = (0..FRAMES)
            .map(|p| (p, win.frames[p]))
            .filter(|&(p, f)| {
                plan.image_source[f].window == index && plan.image_source[f].position == p
            })
            .collect();
        if !finished.is_empty() {
            let batch: Vec<f32> = finished
                .iter()
                .flat_map(|&(p, _)| window::gather_frame(&final_latents, p, plane))
                .collect();
            let images = window::decode_images(&model, &batch, finished.len(), (h, w), cancel)?;
            let image_len = 3 * canvas * canvas;
            for (k, &(_, f)) in finished.iter().enumerate() {
                on_image(f, &images[k * image_len..(k + 1) * image_len])?;
            }
        }
        windows_run += 1;
        window_time += started.elapsed();
    }
    debug_assert!(latents.iter().all(|l| {
        l.as_ref()
            .is_none_or(|l| l.len() == LATENT_CHANNELS * plane)
    }));
    Ok(ClipOutput {
        latents,
        windows_run,
        window_time,
    })
}

fn check_input(input: &ClipInput<'_>, known: &[Option<Vec<f32>>]) -> Result<()> {
    let plan = input.plan;
    let n = plan.total_frames;
    let canvas = input.constants.canvas;
    let bad = |s: String| Err(EngineError::InvalidInput(s));
    if input.frames.len() != n || known.len() != n {
        return bad(format!(
            "a plan of {n} frames got {} frames and {} known latents",
            input.frames.len(),
            known.len()
        ));
    }
    let latent_len = LATENT_CHANNELS * FRAMES * (canvas / 8) * (canvas / 8);
    if input.noise.len() != latent_len {
        return bad(format!(
            "the noise has {} values where a window needs {latent_len}",
            input.noise.len()
        ));
    }
    if plan.image_source.len() != n
        || plan
            .windows
            .iter()
            .any(|w| w.frames.iter().any(|&f| f >= n))
    {
        return bad(format!("the plan does not describe a clip of {n} frames"));
    }
    Ok(())
}

/// Per-frame init and masked latents, each encoded once per clip.
struct FrameEncoder<'a> {
    model: Arc<Model>,
    input: &'a ClipInput<'a>,
    cancel: &'a AtomicBool,
    init: Vec<Option<Vec<f32>>>,
    masked: Vec<Option<Vec<f32>>>,
}

impl<'a> FrameEncoder<'a> {
    fn new(model: Arc<Model>, input: &'a ClipInput<'a>, n: usize, cancel: &'a AtomicBool) -> Self {
        FrameEncoder {
            model,
            input,
            cancel,
            init: vec![None; n],
            masked: vec![None; n],
        }
    }

    /// The images of `frames` (in order), `[len,3,C,C]`.
    fn read_frames(&self, frames: &[usize], image: FrameImage) -> Result<Vec<f32>> {
        let canvas = self.input.constants.canvas;
        let image_len = 3 * canvas * canvas;
        let mut out = vec![0.0; frames.len() * image_len];
        for (k, &f) in frames.iter().enumerate() {
            self.input
                .frames
                .write(f, image, &mut out[k * image_len..(k + 1) * image_len])?;
        }
        Ok(out)
    }

    /// Encodes the frames among `frames` whose `image` latent is not cached yet.
    fn encode(&mut self, frames: &[usize], image: FrameImage) -> Result<()> {
        let mut missing: Vec<usize> = Vec::new();
        for &f in frames {
            if self.cache(image)[f].is_none() && !missing.contains(&f) {
                missing.push(f);
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let canvas = self.input.constants.canvas;
        let pixels = self.read_frames(&missing, image)?;
        let latents = window::encode_scaled(
            &self.model,
            &pixels,
            missing.len(),
            (canvas, canvas),
            self.cancel,
        )?;
        let latent_len = latents.len() / missing.len();
        for (k, &f) in missing.iter().enumerate() {
            self.cache_mut(image)[f] = Some(latents[k * latent_len..(k + 1) * latent_len].to_vec());
        }
        Ok(())
    }

    fn latent(&self, frame: usize, image: FrameImage) -> &[f32] {
        self.cache(image)[frame].as_deref().unwrap_or(&[])
    }

    fn cache(&self, image: FrameImage) -> &Vec<Option<Vec<f32>>> {
        if image == FrameImage::Init {
            &self.init
        } else {
            &self.masked
        }
    }

    fn cache_mut(&mut self, image: FrameImage) -> &mut Vec<Option<Vec<f32>>> {
        if image == FrameImage::Init {
            &mut self.init
        } else {
            &mut self.masked
        }
    }
}
