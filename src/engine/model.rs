// SPDX-License-Identifier: MPL-2.0
//! A validated model directory and its ONNX Runtime sessions (API stub; owner: runtime).

use std::sync::Arc;

use super::error::{EngineError, Result};
use super::stream::ModelOptions;

pub struct Model {
    canvas: u32,
}

impl Model {
    /// Loads and validates a model directory (manifest, graph hashes, graph IO).
    pub fn load(options: &ModelOptions) -> Result<Arc<Model>> {
        Err(EngineError::Model(format!("cannot load {}: not implemented yet", options.model_dir.display())))
    }
    /// The execution provider the sessions run on: "cpu" or "cuda".
    pub fn provider_in_use(&self) -> &'static str {
        "cpu"
    }
    /// The model's default canvas (manifest `canvas`).
    pub fn canvas(&self) -> u32 {
        self.canvas
    }
}
