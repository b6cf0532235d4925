// SPDX-License-Identifier: MPL-2.0
//! The choice of a run's fill back-end for its settings and the current caps:
//! the keyframe pass (`write-plan`), the streaming pass of a plan
//! (`plan-file`), the chunked `StreamOutpainter`, or a flat fill.

use super::FillMode;
use super::config::StreamConfig;
use super::fill::{CanvasSource, FlatFill, FlatKind};
use super::planned::{keyframe_source, planned_source};
use super::state::RunContext;
use crate::engine::limits::FALLBACK_FPS;
use crate::engine::{self, StreamOutpainter};

/// The back-end of a run for the configuration of the current caps.
pub fn new_source(
    run: &RunContext,
    config: &StreamConfig,
) -> engine::Result<Box<dyn CanvasSource>> {
    let settings = &run.settings;
    let fps = config.fps().unwrap_or(FALLBACK_FPS);
    if let Some(source) = keyframe_source(run, &config.canvas, fps)? {
        return Ok(source);
    }
    Ok(match settings.fill_mode {
        FillMode::Outpaint if let Some(plan) = &run.plan => {
            planned_source(plan, &run.models, &config.canvas, fps)?
        }
        FillMode::Outpaint if !run.models.is_empty() => Box::new(StreamOutpainter::new(
            &run.models,
            settings.denoise_params(),
            config.canvas,
            fps,
            settings.lookahead as usize,
            run.strides.clone(),
        )?),
        FillMode::Color => Box::new(FlatFill::new(
            config.canvas,
            FlatKind::Color(settings.fill_rgb()),
        )),
        _ => Box::new(FlatFill::new(config.canvas, FlatKind::Blur)),
    })
}
