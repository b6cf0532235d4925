// SPDX-License-Identifier: MPL-2.0
//! The engine's error type: every failure is a sentence, never a panic.

use std::fmt;

/// An engine failure, carrying a sentence meant for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// A caller-supplied value is out of range (a ratio of 0, a zero-sized frame, ...).
    InvalidInput(String),
    /// The model directory, its manifest or a graph is missing, corrupt or inconsistent.
    Model(String),
    /// ONNX Runtime could not be loaded or an execution provider could not start.
    Runtime(String),
    /// Running a graph failed.
    Inference(String),
    /// The run was cancelled (flush, state change).
    Cancelled,
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::InvalidInput(s) => write!(f, "invalid input: {s}"),
            EngineError::Model(s) => write!(f, "model error: {s}"),
            EngineError::Runtime(s) => write!(f, "ONNX Runtime error: {s}"),
            EngineError::Inference(s) => write!(f, "inference failed: {s}"),
            EngineError::Cancelled => write!(f, "cancelled"),
        }
    }
}

impl EngineError {
    /// The sentence alone, without the kind (for a caller that names the
    /// setting itself).
    pub fn sentence(&self) -> String {
        match self {
            EngineError::InvalidInput(s)
            | EngineError::Model(s)
            | EngineError::Runtime(s)
            | EngineError::Inference(s) => s.clone(),
            EngineError::Cancelled => "cancelled".into(),
        }
    }
}

impl std::error::Error for EngineError {}

pub type Result<T> = std::result::Result<T, EngineError>;
