// SPDX-License-Identifier: MPL-2.0
//! The `m3ddmoutpaint` element: changes a video's aspect ratio by generating the
//! missing area (M3DDM outpainting, or a blurred / flat fill), keeping every
//! source pixel bit-exact.
//!
//! `imp.rs` holds the state machine (pads, events, queries, properties, state
//! changes). It starts two threads of work that share one `State`
//! (`state.rs`, one mutex and one condvar): the source-pad task (`task.rs`:
//! takes the queued items in order, composites and pushes) and the generator
//! (`generator.rs`: runs the fill back-end, the engine's chunks, with no lock
//! held). The other modules are types that these call: settings, caps
//! arithmetic, pixel conversion (`frames.rs`), the fill back-ends (`fill.rs`;
//! the two passes of a keyframe plan in `planned.rs`, the choice in `source.rs`),
//! the metas an output frame carries from its input (`metas.rs`), the frames
//! turned upright by an orientation tag (`orientation.rs`), and the one mapping of engine errors to GStreamer errors (`errors.rs`).

use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;

mod caps;
mod config;
mod errors;
mod fill;
mod fixate;
mod flows;
mod formats;
mod frames;
mod generator;
mod gpu_properties;
mod imp;
mod metas;
mod negotiate;
mod orientation;
mod outputpad;
mod plan_properties;
mod planned;
mod pools;
mod progress;
mod renegotiate;
mod run_context;
mod security_properties;
mod settings;
mod source;
mod state;
mod task;
#[cfg(test)]
mod test_support;

use crate::engine;

/// The element's debug category.
pub(crate) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "m3ddmoutpaint",
        gst::DebugColorFlags::empty(),
        Some("M3DDM video outpainting"),
    )
});

glib::wrapper! {
    pub struct M3ddmOutpaint(ObjectSubclass<imp::M3ddmOutpaint>)
        @extends gst::Element, gst::Object, @implements gst::ChildProxy;
}

/// What fills the area that the new aspect ratio adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstM3ddmFillMode")]
#[non_exhaustive]
pub enum FillMode {
    #[enum_value(
        name = "Outpaint: generate the new area with the M3DDM diffusion model",
        nick = "outpaint"
    )]
    Outpaint = 0,
    #[enum_value(
        name = "Blur: the source stretched over the frame and blurred (no model)",
        nick = "blur"
    )]
    Blur = 1,
    #[enum_value(
        name = "Color: a flat colour, see fill-color (no model)",
        nick = "color"
    )]
    Color = 2,
}

/// Where ONNX Runtime runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstM3ddmExecutionProvider")]
#[non_exhaustive]
pub enum ExecutionProvider {
    #[enum_value(
        name = "Auto: CUDA when it starts, else CPU (the stats say which)",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(
        name = "CUDA: an NVIDIA GPU; an error when it cannot start",
        nick = "cuda"
    )]
    Cuda = 1,
    #[enum_value(name = "CPU", nick = "cpu")]
    Cpu = 2,
    #[enum_value(
        name = "TensorRT: NVIDIA TensorRT with CUDA under it; an error naming what is missing",
        nick = "tensorrt"
    )]
    TensorRt = 3,
}

impl From<ExecutionProvider> for engine::ExecutionProvider {
    fn from(provider: ExecutionProvider) -> Self {
        match provider {
            ExecutionProvider::Auto => engine::ExecutionProvider::Auto,
            ExecutionProvider::Cuda => engine::ExecutionProvider::Cuda,
            ExecutionProvider::Cpu => engine::ExecutionProvider::Cpu,
            ExecutionProvider::TensorRt => engine::ExecutionProvider::TensorRt,
        }
    }
}

/// The diffusion scheduler of the denoising loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstM3ddmScheduler")]
#[non_exhaustive]
pub enum Scheduler {
    #[enum_value(name = "PNDM (the official M3DDM scheduler)", nick = "pndm")]
    Pndm = 0,
    #[enum_value(name = "DDIM", nick = "ddim")]
    Ddim = 1,
    #[enum_value(name = "DPM-Solver++ (2M)", nick = "dpmsolver++")]
    DpmSolverPp = 2,
}

impl From<Scheduler> for engine::SchedulerKind {
    fn from(scheduler: Scheduler) -> Self {
        match scheduler {
            Scheduler::Pndm => engine::SchedulerKind::Pndm,
            Scheduler::Ddim => engine::SchedulerKind::Ddim,
            Scheduler::DpmSolverPp => engine::SchedulerKind::DpmSolverPp,
        }
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    FillMode::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    ExecutionProvider::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    Scheduler::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    outputpad::OutputPad::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "m3ddmoutpaint",
        gst::Rank::NONE,
        M3ddmOutpaint::static_type(),
    )
}
