// SPDX-License-Identifier: MPL-2.0
//! The M3DDM engine: everything between pixels and ONNX Runtime, with no
//! GStreamer types, so it is tested on its own. See DESIGN.md for the map.

pub mod calibration;
pub mod cancel;
pub mod clip;
pub mod compose;
pub mod error;
pub mod geometry;
pub mod limits;
pub mod manifest;
pub mod model;
pub mod model_dirs;
pub mod pixels;
pub mod planner;
pub mod runtime;
pub mod scene;
pub mod scheduler;
pub mod stream;
mod stream_stats;
#[cfg(test)]
pub(crate) mod test_support;
pub mod twopass;
pub mod window;

pub use cancel::Cancel;
pub use error::{EngineError, Result};
pub use geometry::{CanvasLayout, OutputLayout, Ratio, Rect};
pub use model::{Model, ModelOptions, RemoteOptions, ServerStats};
pub use pixels::RgbImage;
pub use runtime::{CudnnAlgoSearch, ExecutionProvider, GpuOptions, SessionConfig};
pub use scheduler::SchedulerKind;
pub use stream::StreamOutpainter;
pub use window::DenoiseParams;
