// SPDX-License-Identifier: MPL-2.0
//! A chunk's processing time before any chunk has run, so that the first
//! latency a live pipeline budgets already includes it. Two windows of blank
//! frames run through the engine, with one and with two denoising steps: the
//! first is a window's fixed cost (VAE encode and decode, the global context,
//! one step), their difference the cost of a step. A chunk of `lookahead`
//! frames costs its plan's windows at the run's steps. Measured once per
//! model directory, placement and guidance setting in the process (two
//! windows at the model's canvas, cheaper than one window of 50 steps).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use super::cancel::Cancel;
use super::error::Result;
use super::geometry::{Ratio, canvas_layout};
use super::limits::FALLBACK_FPS;
use super::model::Model;
use super::pixels::RgbImage;
use super::planner::{self, Strides};
use super::stream::StreamOutpainter;
use super::window::DenoiseParams;

/// Frames of one window.
const WINDOW_FRAMES: usize = 16;

/// What one window costs on a model with some guidance setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowCost {
    /// A window with one step: VAE, global context and one U-Net step.
    pub one_step: Duration,
    /// Each further step.
    pub per_step: Duration,
}

impl WindowCost {
    /// A window of `steps` steps.
    pub fn window(&self, steps: u32) -> Duration {
        self.one_step + self.per_step * steps.saturating_sub(1)
    }

    /// A chunk of `frames` frames planned at `strides` (the first of a
    /// stream: no carried guide).
    pub fn chunk(&self, frames: usize, steps: u32, strides: &Strides) -> Duration {
        let windows =
            planner::plan_clip(frames.max(1), false, strides).map_or(1, |p| p.windows.len());
        self.window(steps) * windows as u32
    }
}

/// What a cost is remembered by: the model directory, where its graphs run,
/// its canvas and the guidance scales' bits (a reload of the same model
/// costs the same).
type CostKey = (PathBuf, String, u32, (u64, u64));
static MEASURED: LazyLock<Mutex<HashMap<CostKey, WindowCost>>> = LazyLock::new(Default::default);

/// The window cost of `model` with the guidance of `params` (measured the
/// first time in the process, then remembered).
pub fn window_cost(model: &Arc<Model>, params: &DenoiseParams) -> Result<WindowCost> {
    let key = (
        model
            .dir()
            .canonicalize()
            .unwrap_or_else(|_| model.dir().to_owned()),
        model.placement().label(),
        model.canvas(),
        (
            f64::from(params.guidance_scale).to_bits(),
            f64::from(params.global_guidance_scale).to_bits(),
        ),
    );
    if let Some(cost) = MEASURED.lock().unwrap().get(&key) {
        return Ok(*cost);
    }
    let one = time_window(model, params, 1)?;
    let two = time_window(model, params, 2)?;
    let cost = WindowCost {
        one_step: one,
        per_step: two.saturating_sub(one),
    };
    MEASURED.lock().unwrap().insert(key, cost);
    Ok(cost)
}

/// The time of one window of blank frames with `steps` steps.
fn time_window(model: &Arc<Model>, params: &DenoiseParams, steps: u32) -> Result<Duration> {
    let canvas = model.canvas();
    let layout = canvas_layout(16, 9, Ratio { num: 9, den: 16 }, canvas)?;
    let params = DenoiseParams {
        steps,
        ..params.clone()
    };
    let mut stream = StreamOutpainter::new(
        std::slice::from_ref(model),
        params,
        layout,
        FALLBACK_FPS,
        WINDOW_FRAMES,
        Strides::official(),
    )?;
    let frame = Arc::new(RgbImage::filled(
        layout.content.width(),
        layout.content.height(),
        [128, 128, 128],
    ));
    for _ in 0..WINDOW_FRAMES {
        stream.push(frame.clone())?;
    }
    let started = Instant::now();
    stream.run_next(true, &Cancel::new())?;
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::test_support::tiny_model;

    #[test]
    fn a_chunk_costs_its_windows_at_the_steps() {
        let cost = WindowCost {
            one_step: Duration::from_millis(30),
            per_step: Duration::from_millis(10),
        };
        assert_eq!(cost.window(1), Duration::from_millis(30));
        assert_eq!(cost.window(50), Duration::from_millis(520));
        let windows = planner::plan_clip(226, false, &Strides::official())
            .unwrap()
            .windows
            .len();
        assert!(windows > 1);
        assert_eq!(
            cost.chunk(226, 50, &Strides::official()),
            Duration::from_millis(520) * windows as u32
        );
    }

    #[test]
    fn the_cost_is_measured_once_per_model() {
        let model = tiny_model();
        let params = DenoiseParams::default();
        let first = window_cost(&model, &params).unwrap();
        assert!(first.one_step > Duration::ZERO);
        assert_eq!(window_cost(&model, &params).unwrap(), first, "remembered");
    }
}
