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

use std::fmt;

use serde_json::Value;

use super::error::{EngineError, Result};
pub use config::{BetaSchedule, SchedulerConfig, SolverType, TimestepSpacing, linspace_like_numpy};

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

/// The multistep memory of a run; `reset` clears it (diffusers does so in
/// `set_timesteps`, i.e. once per window).
#[derive(Debug, Clone, Default)]
struct History {
    /// Steps taken.
    counter: usize,
    /// PNDM: the last (up to four) noise predictions, oldest first.
    eps: Vec<Vec<f32>>,
    /// PNDM: the sample the second (warm-up) step restarts from (one entry, or none).
    warmup: Vec<Vec<f32>>,
    /// DPM-Solver++: the last (up to `solver_order`) data predictions.
    x0_preds: Vec<Vec<f32>>,
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
        match self.kind {
            SchedulerKind::Pndm => self.step_plms(eps, t, sample)?,
            SchedulerKind::Ddim => self.step_ddim(eps, t, sample)?,
            SchedulerKind::DpmSolverPp => self.step_dpm(eps, t, sample)?,
        }
        self.history.counter += 1;
        Ok(())
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

    /// PNDM's linear multistep (PLMS) step with the `skip_prk_steps` warm-up:
    /// the second call averages the first two predictions and restarts from
    /// the first call's sample, one stride higher.
    fn step_plms(&mut self, eps: &[f32], t: i64, sample: &mut [f32]) -> Result<()> {
        let warmup_second = self.history.counter == 1;
        let (t, prev_t) = if warmup_second {
            (t + self.step_ratio(), t)
        } else {
            (t, t - self.step_ratio())
        };
        let (a_t, a_prev) = (self.alpha_at(t)?, self.alpha_or_final(prev_t)?);
        let sample_coeff = (a_prev / a_t).sqrt();
        let denom = a_t * (1.0 - a_prev).sqrt() + (a_t * (1.0 - a_t) * a_prev).sqrt();
        let eps_coeff = (a_prev - a_t) / denom;

        let h = &mut self.history;
        if !warmup_second {
            remember(&mut h.eps, eps, 4);
        }
        let restart = if h.eps.len() == 1 && h.counter == 0 {
            remember(&mut h.warmup, sample, 1);
            false
        } else if h.eps.len() == 1 && warmup_second {
            if h.warmup.is_empty() {
                return Err(inconsistent("PNDM warm-up"));
            }
            true
        } else {
            false
        };
        let n = h.eps.len();
        let last = |k: usize| h.eps[n - k].as_slice();
        let (weights, terms): (&[f64], [&[f32]; 4]) = match n {
            1 if warmup_second => (&[0.5, 0.5], [eps, last(1), &[], &[]]),
            1 => (&[1.0], [eps, &[], &[], &[]]),
            2 => (&[1.5, -0.5], [last(1), last(2), &[], &[]]),
            3 => (
                &[23.0 / 12.0, -16.0 / 12.0, 5.0 / 12.0],
                [last(1), last(2), last(3), &[]],
            ),
            _ => (
                &[55.0 / 24.0, -59.0 / 24.0, 37.0 / 24.0, -9.0 / 24.0],
                [last(1), last(2), last(3), last(4)],
            ),
        };
        let base: Option<&[f32]> = restart.then(|| h.warmup[0].as_slice());
        for i in 0..sample.len() {
            let e: f64 = weights
                .iter()
                .zip(&terms)
                .map(|(w, v)| w * v[i] as f64)
                .sum();
            let x = base.map_or(sample[i], |b| b[i]) as f64;
            sample[i] = (sample_coeff * x - eps_coeff * e) as f32;
        }
        if restart {
            h.warmup.clear();
        }
        Ok(())
    }

    /// DDIM with eta 0 (deterministic), optional x0 clipping.
    fn step_ddim(&self, eps: &[f32], t: i64, sample: &mut [f32]) -> Result<()> {
        let (a_t, a_prev) = (
            self.alpha_at(t)?,
            self.alpha_or_final(t - self.step_ratio())?,
        );
        let (sqrt_a, sqrt_b) = (a_t.sqrt(), (1.0 - a_t).sqrt());
        let (sqrt_a_prev, sqrt_b_prev) = (a_prev.sqrt(), (1.0 - a_prev).sqrt());
        let clip = self.config.clip_sample_range;
        for (x, &e) in sample.iter_mut().zip(eps) {
            let (xv, e) = (*x as f64, e as f64);
            let mut x0 = (xv - sqrt_b * e) / sqrt_a;
            if let Some(range) = clip {
                x0 = x0.clamp(-range, range);
            }
            *x = (sqrt_a_prev * x0 + sqrt_b_prev * e) as f32;
        }
        Ok(())
    }

    /// Multistep DPM-Solver++ in data-prediction form.
    fn step_dpm(&mut self, eps: &[f32], t: i64, sample: &mut [f32]) -> Result<()> {
        let n = self.timesteps.len();
        let index = self.timesteps.iter().position(|&s| s == t).unwrap_or(n - 1);
        let prev_t = if index == n - 1 {
            0
        } else {
            self.timesteps[index + 1]
        };
        let lower_order_final = index == n - 1 && self.config.lower_order_final && n < 15;
        let (alpha_s, sigma_s) = self.alpha_sigma(t)?;
        let order = self.config.solver_order;
        let slot = take_slot(&mut self.history.x0_preds, order, sample.len());
        for ((m, &x), &e) in slot.iter_mut().zip(sample.iter()).zip(eps) {
            *m = ((x as f64 - sigma_s * e as f64) / alpha_s) as f32;
        }
        let steps_taken = self.history.counter.min(order);
        let (alpha_t, sigma_t) = self.alpha_sigma(prev_t)?;
        let lambda = |a: f64, s: f64| a.ln() - s.ln();
        let lambda_t = lambda(alpha_t, sigma_t);
        let lambda_s0 = lambda(alpha_s, sigma_s);
        let hstep = lambda_t - lambda_s0;
        let decay = (-hstep).exp() - 1.0;
        let ratio = sigma_t / sigma_s;
        let first_order = order == 1
            || steps_taken < 1
            || lower_order_final
            || index == 0
            || self.history.x0_preds.len() < 2;
        let second_order = if first_order {
            None
        } else {
            let (alpha_s1, sigma_s1) = self.alpha_sigma(self.timesteps[index - 1])?;
            let r0 = (lambda_s0 - lambda(alpha_s1, sigma_s1)) / hstep;
            let d1_coeff = match self.config.solver_type {
                SolverType::Midpoint => -0.5 * alpha_t * decay,
                SolverType::Heun => alpha_t * (decay / hstep + 1.0),
            };
            Some((r0, d1_coeff))
        };
        let preds = &self.history.x0_preds;
        let m0 = &preds[preds.len() - 1];
        for (i, x) in sample.iter_mut().enumerate() {
            let m0 = m0[i] as f64;
            let mut next = ratio * *x as f64 - alpha_t * decay * m0;
            if let Some((r0, d1_coeff)) = second_order {
                let m1 = preds[preds.len() - 2][i] as f64;
                next += d1_coeff * (m0 - m1) / r0;
            }
            *x = next as f32;
        }
        Ok(())
    }

    fn alpha_sigma(&self, t: i64) -> Result<(f64, f64)> {
        let a = self.alpha_at(t)?;
        Ok((a.sqrt(), (1.0 - a).sqrt()))
    }
}

/// Appends a copy of `values` to a history of at most `keep` entries, reusing
/// the oldest entry's buffer once the history is full.
fn remember(history: &mut Vec<Vec<f32>>, values: &[f32], keep: usize) {
    take_slot(history, keep, values.len()).copy_from_slice(values);
}

/// The buffer for the newest entry of a history of at most `keep` entries of
/// `len` values: a recycled oldest one once the history is full.
fn take_slot(history: &mut Vec<Vec<f32>>, keep: usize, len: usize) -> &mut [f32] {
    let mut slot = if history.len() >= keep {
        history.remove(0)
    } else {
        Vec::new()
    };
    slot.resize(len, 0.0);
    history.push(slot);
    history.last_mut().expect("just pushed")
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

fn inconsistent(what: &str) -> EngineError {
    EngineError::InvalidInput(format!(
        "the scheduler's {what} state is missing: call `reset` before a new run"
    ))
}

#[cfg(test)]
mod tests;
