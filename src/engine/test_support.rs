// SPDX-License-Identifier: MPL-2.0
//! What the engine's unit tests share: the committed tiny model, and an empty
//! scratch folder per test.

use std::path::PathBuf;
use std::sync::Arc;

use super::model::{Model, ModelOptions};
use super::runtime::{ExecutionProvider, SessionConfig};

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
