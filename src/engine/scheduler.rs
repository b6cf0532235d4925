// SPDX-License-Identifier: MPL-2.0
//! Diffusion schedulers as diffusers 0.18.2 implements them (the version the
//! official M3DDM code and the conformance cases ran): PNDM with
//! `skip_prk_steps`, DDIM with eta 0, and multistep DPM-Solver++ (order 1 or 2,
//! midpoint or Heun, lower-order final step). They work on flat f32 latents;
//! coefficients and per-element arithmetic are f64.
//!
//! The official pipeline runs at strength 1.0 in an img2img way:
//! `x_init = add_noise(x0, noise, timesteps[-steps])`, then the loop runs over
//! `timesteps[1:]` (with `steps_offset` 1). For PNDM the list has `steps + 1`
//! entries (the PLMS warm-up repeats one), so the loop runs `steps` calls and
//! the noise level of the start is the loop's first timestep; for DDIM and
//! DPM-Solver++ it runs `steps - 1` calls. `Scheduler::run_timesteps` gives
//! both the noising timestep and the loop.

mod config;
mod recipe;
mod steps;

use std::fmt;

use serde_json::Value;

use super::error::{EngineError, Result};
pub use config::{BetaSchedule, SchedulerConfig, SolverType, TimestepSpacing, linspace_like_numpy};
use recipe::Memory;
pub use recipe::{Combo, StepRecipe, Term, Write};
use steps::PLMS_WARMUP_SLOT;

/// The denoising scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchedulerKind {
    #[default]
    Pndm,
    Ddim,
    DpmSolverPp,
}

impl SchedulerKind {
    pub const ALL: [SchedulerKind; 3] = [
        SchedulerKind::Pndm,
        SchedulerKind::Ddim,
        SchedulerKind::DpmSolverPp,
    ];

    /// `pndm`, `ddim` or `dpmsolver++` (case-insensitive).
    pub fn from_name(name: &str) -> Result<SchedulerKind> {
        match name.trim().to_ascii_lowercase().as_str() {
            "pndm" => Ok(SchedulerKind::Pndm),
            "ddim" => Ok(SchedulerKind::Ddim),
            "dpmsolver++" | "dpm-solver++" | "dpmsolverpp" => Ok(SchedulerKind::DpmSolverPp),
            _ => Err(EngineError::InvalidInput(format!(
                "unknown scheduler `{name}`: use pndm, ddim or dpmsolver++"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Pndm => "pndm",
            SchedulerKind::Ddim => "ddim",
            SchedulerKind::DpmSolverPp => "dpmsolver++",
        }
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a run stands in its multistep memory; `reset` starts over
/// (diffusers does so in `set_timesteps`, i.e. once per window). The values
/// themselves live in `memory` (on the host) or wherever the steps run.
#[derive(Debug, Clone, Default)]
struct History {
    /// Steps taken.
    counter: usize,
    /// PNDM's predictions, DPM-Solver++'s data predictions: entries held in
    /// the ring of slots `0..ring_size()`, and the slot the next one goes to.
    ring_len: usize,
    ring_head: usize,
    /// PNDM: whether the warm-up slot holds the sample to restart from.
    warmup_held: bool,
}

/// One scheduler for one denoising run (`reset` it before the next one).
#[derive(Debug, Clone)]
pub struct Scheduler {
    kind: SchedulerKind,
    config: SchedulerConfig,
    steps: usize,
    alphas_cumprod: Vec<f64>,
    final_alpha_cumprod: f64,
    timesteps: Vec<i64>,
    history: History,
    memory: Memory,
}

impl Scheduler {
    /// A `kind` scheduler with the Stable Diffusion 1.5 configuration.
    pub fn new(kind: SchedulerKind, steps: usize) -> Result<Scheduler> {
        Scheduler::with_config(kind, steps, SchedulerConfig::sd15(kind))
    }

    /// A `kind` scheduler whose configuration is `sd15(kind)` overridden by the
    /// keys of a JSON object (a manifest's `scheduler_config`).
    pub fn from_json(kind: SchedulerKind, steps: usize, json: &Value) -> Result<Scheduler> {
        Scheduler::with_config(kind, steps, SchedulerConfig::from_json(kind, json)?)
    }

    pub fn with_config(
        kind: SchedulerKind,
        steps: usize,
        config: SchedulerConfig,
    ) -> Result<Scheduler> {
        let alphas_cumprod = config.alphas_cumprod()?;
        let timesteps = config.timesteps(kind, steps, &alphas_cumprod)?;
        let final_alpha_cumprod = if config.set_alpha_to_one {
            1.0
        } else {
            alphas_cumprod[0]
        };
        Ok(Scheduler {
            kind,
            config,
            steps,
            alphas_cumprod,
            final_alpha_cumprod,
            timesteps,
            history: History::default(),
            memory: Memory::default(),
        })
    }

    pub fn kind(&self) -> SchedulerKind {
        self.kind
    }

    /// The number of inference steps asked for.
    pub fn steps(&self) -> usize {
        self.steps
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// The full inference timestep list (diffusers' `scheduler.timesteps`).
    pub fn timesteps(&self) -> &[i64] {
        &self.timesteps
    }

    /// The official strength-1.0 run: the timestep at which the start latents
    /// are noised, and the timesteps the loop steps through.
    pub fn run_timesteps(&self) -> (i64, Vec<i64>) {
        self.run_timesteps_for_strength(1.0)
    }

    /// The official img2img schedule for `strength` in [0, 1] (values outside
    /// are clamped): `init = min(int(steps*strength) + offset, steps)`, noise at
    /// `timesteps[-init]`, loop over `timesteps[max(steps - init + offset, 0):]`.
    pub fn run_timesteps_for_strength(&self, strength: f64) -> (i64, Vec<i64>) {
        let steps = self.steps as i64;
        let offset = self.config.steps_offset;
        let strength = if strength.is_nan() {
            1.0
        } else {
            strength.clamp(0.0, 1.0)
        };
        let init = ((steps as f64 * strength) as i64 + offset).min(steps);
        let len = self.timesteps.len() as i64;
        let noise_index = (len - init).clamp(0, len - 1) as usize;
        let start = (steps - init + offset).clamp(0, len) as usize;
        (
            self.timesteps[noise_index],
            self.timesteps[start..].to_vec(),
        )
    }

    /// Clears the multistep memory for a new run over the same timesteps.
    pub fn reset(&mut self) {
        self.history = History::default();
    }

    /// `sqrt(a_t) * x0 + sqrt(1 - a_t) * noise` at training timestep `t`.
    pub fn add_noise(&self, x0: &[f32], noise: &[f32], t: i64) -> Result<Vec<f32>> {
        same_len("noise", noise, x0)?;
        let a = self.alpha_at(t)?;
        let (cx, cn) = (a.sqrt(), (1.0 - a).sqrt());
        Ok(x0
            .iter()
            .zip(noise)
            .map(|(&x, &n)| (cx * x as f64 + cn * n as f64) as f32)
            .collect())
    }

    /// One denoising step from `sample` at timestep `t` with the model's noise
    /// prediction `eps`; returns the sample at the next (lower) timestep.
    pub fn step(&mut self, eps: &[f32], t: i64, sample: &[f32]) -> Result<Vec<f32>> {
        let mut next = sample.to_vec();
        self.step_in_place(eps, t, &mut next)?;
        Ok(next)
    }

    /// `step`, writing the result over `sample`; once the multistep memory is
    /// full it allocates nothing.
    pub fn step_in_place(&mut self, eps: &[f32], t: i64, sample: &mut [f32]) -> Result<()> {
        same_len("the noise prediction", eps, sample)?;
        let recipe = self.recipe(t)?;
        self.memory.apply(&recipe, eps, sample);
        Ok(())
    }

    /// The next step at timestep `t` as linear maps (`recipe.rs`), advancing
    /// the run; whoever runs the steps keeps the values of its memory slots.
    pub fn recipe(&mut self, t: i64) -> Result<StepRecipe> {
        let recipe = match self.kind {
            SchedulerKind::Pndm => self.plms_recipe(t)?,
            SchedulerKind::Ddim => self.ddim_recipe(t)?,
            SchedulerKind::DpmSolverPp => self.dpm_recipe(t)?,
        };
        self.history.counter += 1;
        Ok(recipe)
    }

    /// The memory slots a run's steps write and read.
    pub fn memory_slots(&self) -> usize {
        match self.kind {
            SchedulerKind::Pndm => PLMS_WARMUP_SLOT + 1,
            SchedulerKind::Ddim => 1,
            SchedulerKind::DpmSolverPp => self.config.solver_order,
        }
    }

    /// Whether every step is linear (DDIM clipping its x0 is not).
    pub fn is_linear(&self) -> bool {
        self.kind != SchedulerKind::Ddim || self.config.clip_sample_range.is_none()
    }

    fn alpha_at(&self, t: i64) -> Result<f64> {
        usize::try_from(t)
            .ok()
            .and_then(|i| self.alphas_cumprod.get(i).copied())
            .ok_or_else(|| {
                EngineError::InvalidInput(format!(
                    "timestep {t} is outside the training range 0..{}",
                    self.alphas_cumprod.len()
                ))
            })
    }

    /// The alpha product at `t`, or past the end of the chain for `t < 0`.
    fn alpha_or_final(&self, t: i64) -> Result<f64> {
        if t < 0 {
            Ok(self.final_alpha_cumprod)
        } else {
            self.alpha_at(t)
        }
    }

    /// The training-timestep distance between two inference steps.
    fn step_ratio(&self) -> i64 {
        (self.config.num_train_timesteps / self.steps) as i64
    }

    fn alpha_sigma(&self, t: i64) -> Result<(f64, f64)> {
        let a = self.alpha_at(t)?;
        Ok((a.sqrt(), (1.0 - a).sqrt()))
    }
}

fn same_len(what: &str, got: &[f32], sample: &[f32]) -> Result<()> {
    if got.len() == sample.len() {
        Ok(())
    } else {
        Err(EngineError::InvalidInput(format!(
            "{what} has {} values but the sample has {}",
            got.len(),
            sample.len()
        )))
    }
}

#[cfg(test)]
mod tests;
