// SPDX-License-Identifier: MPL-2.0
//! What a window needs besides its frames: the VAE in both directions (scaled
//! latents, images in [0,1]), the constants that depend only on the model and
//! the canvas layout (the global encoder's output on all-zero latents, the
//! unconditional latent, the mask at latent size), computed once per run, and
//! the guidance context of a clip (those constants plus enc(global frames)).

use std::sync::Arc;

use super::{FRAMES, LATENT_CHANNELS};
use crate::engine::cancel::Cancel;
use crate::engine::error::{EngineError, Result};
use crate::engine::limits::{LATENT_FACTOR, check_canvas_side};
use crate::engine::model::Model;
use crate::engine::pixels::tensor::image_from_decoded;

/// Images per VAE call (results do not depend on it: each image is independent).
const VAE_BATCH: usize = 8;

/// Encodes `n` images `[n,3,H,W]` in [-1,1] to scaled latents `[n,4,H/8,W/8]`.
pub fn encode_scaled(
    model: &Model,
    images: &[f32],
    n: usize,
    (height, width): (usize, usize),
    cancel: &Cancel,
) -> Result<Vec<f32>> {
    check_canvas_side(height)?;
    check_canvas_side(width)?;
    let image_len = 3 * height * width;
    if images.len() < n * image_len {
        return Err(EngineError::InvalidInput(format!(
            "{n} images of {width}×{height} need {} values, got {}",
            n * image_len,
            images.len()
        )));
    }
    let mut out = Vec::with_capacity(n * LATENT_CHANNELS * (height / 8) * (width / 8));
    for chunk in images[..n * image_len].chunks(VAE_BATCH * image_len) {
        cancel.check()?;
        out.extend(model.encode(chunk, chunk.len() / image_len, (height, width), cancel)?);
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
    (h, w): (usize, usize),
    cancel: &Cancel,
) -> Result<Vec<f32>> {
    let latent_len = LATENT_CHANNELS * h * w;
    if latents.len() < n * latent_len {
        return Err(EngineError::InvalidInput(format!(
            "{n} latents of {w}×{h} need {} values, got {}",
            n * latent_len,
            latents.len()
        )));
    }
    let inv_scale = 1.0 / model.latent_scale();
    let mut out = Vec::with_capacity(n * 3 * 64 * h * w);
    for chunk in latents[..n * latent_len].chunks(VAE_BATCH * latent_len) {
        cancel.check()?;
        let unscaled: Vec<f32> = chunk.iter().map(|v| v * inv_scale).collect();
        let decoded = model.decode(&unscaled, chunk.len() / latent_len, (h, w), cancel)?;
        out.extend(decoded.into_iter().map(image_from_decoded));
    }
    Ok(out)
}

/// The pixel mask `[C*C]` (1 = generate) at latent size, as PyTorch's default
/// nearest interpolation does it for a factor of 8: latent (i, j) = pixel (8i, 8j).
pub fn latent_mask(mask: &[f32], canvas: usize) -> Result<Vec<f32>> {
    check_canvas_side(canvas)?;
    if mask.len() != canvas * canvas {
        return Err(EngineError::InvalidInput(format!(
            "a mask of {} values does not fit a {canvas}×{canvas} canvas",
            mask.len()
        )));
    }
    let factor = LATENT_FACTOR as usize;
    let side = canvas / factor;
    Ok((0..side * side)
        .map(|k| mask[(k / side) * factor * canvas + (k % side) * factor])
        .collect())
}

/// What every window of a run shares: it depends only on the model, the canvas
/// and the mask, so it is computed once per run.
pub struct WindowConstants {
    /// The canvas side C.
    pub canvas: usize,
    /// The global encoder's output on all-zero latents, `[T*D]`.
    pub zero_context: Arc<[f32]>,
    /// The same context with each token once: its 16 per-frame blocks are
    /// identical, and cross-attention over 16 copies of a block is attention
    /// over the block (every weight and its sum scale alike), so the items that
    /// take it can send one block (`[T/16 * D]`), when the blocks are identical.
    pub zero_block: Option<Arc<[f32]>>,
    pub tokens: usize,
    pub dim: usize,
    /// The scaled latent `[4,C/8,C/8]` of an all −1 image (the unconditional condition).
    pub uncond: Vec<f32>,
    /// The mask at latent size `[(C/8)²]`, 1 = generate.
    pub mask: Vec<f32>,
}

impl WindowConstants {
    /// The constants of a `canvas × canvas` run whose pixel mask is `mask` (`[C*C]`).
    pub fn new(
        model: &Model,
        canvas: usize,
        mask: &[f32],
        cancel: &Cancel,
    ) -> Result<WindowConstants> {
        let latent_side = canvas / LATENT_FACTOR as usize;
        let mask = latent_mask(mask, canvas)?;
        let uncond = encode_scaled(
            model,
            &vec![-1.0; 3 * canvas * canvas],
            1,
            (canvas, canvas),
            cancel,
        )?;
        cancel.check()?;
        let zero_latents = vec![0.0; FRAMES * LATENT_CHANNELS * latent_side * latent_side];
        let (zero, tokens, dim) =
            model.global_context(&zero_latents, (latent_side, latent_side), cancel)?;
        let zero_block = one_block(&zero, tokens, dim).map(Into::into);
        Ok(WindowConstants {
            canvas,
            zero_context: zero.into(),
            zero_block,
            tokens,
            dim,
            uncond,
            mask,
        })
    }

    /// The latent side h = w = C/8.
    pub fn latent_side(&self) -> usize {
        self.canvas / LATENT_FACTOR as usize
    }
}

/// The first of the `FRAMES` token blocks of `context` (`[tokens*dim]`), when
/// all of them are identical.
fn one_block(context: &[f32], tokens: usize, dim: usize) -> Option<Vec<f32>> {
    if tokens == 0 || !tokens.is_multiple_of(FRAMES) {
        return None;
    }
    let block = tokens / FRAMES * dim;
    let first = &context[..block];
    context
        .chunks_exact(block)
        .all(|b| b == first)
        .then(|| first.to_vec())
}

/// The global encoder's output on all-zero latents and on the 16 global
/// latents of a clip: computed once per clip, reused by every step.
pub struct GuidanceContext {
    pub zero: Arc<[f32]>,
    /// `zero` with each token once (see `WindowConstants::zero_block`).
    pub zero_block: Option<Arc<[f32]>>,
    pub global: Vec<f32>,
    pub tokens: usize,
    pub dim: usize,
}

impl GuidanceContext {
    /// From the 16 global frames `[16,3,C,C]` in [-1,1].
    pub fn from_frames(
        model: &Model,
        constants: &WindowConstants,
        frames: &[f32],
        cancel: &Cancel,
    ) -> Result<GuidanceContext> {
        let canvas = constants.canvas;
        let latents = encode_scaled(model, frames, FRAMES, (canvas, canvas), cancel)?;
        GuidanceContext::from_latents(model, constants, &latents, cancel)
    }

    /// From the scaled latents `[16,4,C/8,C/8]` of the 16 global frames (a
    /// keyframe plan keeps these, not the images).
    pub fn from_latents(
        model: &Model,
        constants: &WindowConstants,
        latents: &[f32],
        cancel: &Cancel,
    ) -> Result<GuidanceContext> {
        let side = constants.latent_side();
        let expected = FRAMES * LATENT_CHANNELS * side * side;
        if latents.len() != expected {
            return Err(EngineError::InvalidInput(format!(
                "the global frames' latents have {} values where a {}×{} canvas needs {expected}",
                latents.len(),
                constants.canvas,
                constants.canvas
            )));
        }
        cancel.check()?;
        let (global, tokens, dim) = model.global_context(latents, (side, side), cancel)?;
        if (tokens, dim) != (constants.tokens, constants.dim) {
            return Err(EngineError::Inference(
                "the global encoder's output shape depends on its input values".into(),
            ));
        }
        Ok(GuidanceContext {
            zero: constants.zero_context.clone(),
            zero_block: constants.zero_block.clone(),
            global,
            tokens,
            dim,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_token_blocks_are_kept_once() {
        // 16 blocks of 2 tokens of 3 values.
        let block = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let same: Vec<f32> = block.repeat(FRAMES);
        assert_eq!(one_block(&same, 2 * FRAMES, 3), Some(block.to_vec()));
        let mut differs = same.clone();
        differs[40] = 0.0;
        assert_eq!(one_block(&differs, 2 * FRAMES, 3), None);
        assert_eq!(one_block(&same[..5], 5, 1), None);
    }

    #[test]
    fn latent_mask_takes_every_eighth_pixel() {
        // A 16×16 mask whose pixel (y, x) is y*16 + x: latent (i, j) is pixel (8i, 8j).
        let mask: Vec<f32> = (0..256).map(|v| v as f32).collect();
        assert_eq!(
            latent_mask(&mask, 16).unwrap(),
            vec![0.0, 8.0, 128.0, 136.0]
        );
        assert!(latent_mask(&mask[..128], 16).is_err());
        assert!(latent_mask(&mask, 12).is_err());
    }
}
