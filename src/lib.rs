// SPDX-License-Identifier: MPL-2.0
//! GStreamer plugin `m3ddm`: the `m3ddmoutpaint` element changes a video's aspect
//! ratio by generating the missing area with M3DDM (arXiv 2309.02119).
//!
//! Layers: `m3ddmoutpaint` (the element: pads, caps, events, a worker) →
//! `engine` (geometry, planner, schedulers, window denoising, ONNX sessions;
//! no GStreamer types) → ONNX Runtime.

pub mod engine;
mod m3ddmoutpaint;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    m3ddmoutpaint::register(plugin)
}

gst::plugin_define!(
    m3ddm,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
