// SPDX-License-Identifier: MPL-2.0
//! What the engine's unit tests share: the committed tiny model, an empty
//! scratch folder per test, and a small test clip (its layout, frames and
//! denoising parameters).

use std::path::PathBuf;
use std::sync::Arc;

use super::geometry::{CanvasLayout, Ratio, canvas_layout};
use super::model::{Model, ModelOptions};
use super::pixels::RgbImage;
use super::runtime::{ExecutionProvider, SessionConfig};
use super::window::DenoiseParams;

/// The committed tiny random model (`make tiny-model`), or `M3DDM_TEST_MODEL`.
pub(crate) fn tiny_model_dir() -> PathBuf {
    std::env::var_os("M3DDM_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/models/tiny")))
}

/// An empty folder `m3ddm-<tag>-<pid>` in the system's temporary folder;
/// `tag` must be unique among the tests, which run in parallel.
pub(crate) fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("m3ddm-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The options of the tiny model on `provider`.
pub(crate) fn model_options(provider: ExecutionProvider) -> ModelOptions {
    ModelOptions {
        model_dir: tiny_model_dir(),
        session: SessionConfig {
            provider,
            ..SessionConfig::default()
        },
        remote: Default::default(),
    }
}

/// The tiny model on the CPU, shared by the tests of this process.
pub(crate) fn tiny_model() -> Arc<Model> {
    Model::shared(&model_options(ExecutionProvider::Cpu))
        .unwrap_or_else(|e| panic!("the tiny model is needed for this test: {e}"))
}

/// The largest absolute difference between two lists of tensors, element by element.
pub(crate) fn max_abs_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Deterministic values in [-1, 1) that vary from element to element and seed to seed.
pub(crate) fn wave(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|k| (((k * 7919 + seed * 104_729) % 2003) as f32 / 1001.5) - 1.0)
        .collect()
}

/// One denoising step from the noise of `seed`: the test clips' parameters.
pub(crate) fn one_step_params(seed: u64) -> DenoiseParams {
    DenoiseParams {
        steps: 1,
        seed,
        ..DenoiseParams::default()
    }
}

/// A 64×36 source reframed to 9:16 on a `canvas` canvas.
pub(crate) fn portrait_layout(canvas: u32) -> CanvasLayout {
    canvas_layout(64, 36, Ratio::new(9, 16).unwrap(), canvas).unwrap()
}

/// Frame k of a test clip at the layout's content size: a flat colour that
/// changes with k, and a bright column that moves with k.
pub(crate) fn moving_column_frame(layout: &CanvasLayout, k: usize) -> RgbImage {
    let (w, h) = (layout.content.width(), layout.content.height());
    let mut image = RgbImage::filled(w, h, [(k * 13 % 256) as u8, 90, (255 - k * 7 % 256) as u8]);
    let x = (k as u32 * 3) % w;
    for y in 0..h {
        let at = ((y * w + x) * 3) as usize;
        image.data[at..at + 3].copy_from_slice(&[250, 250, 250]);
    }
    image
}
