// SPDX-License-Identifier: MPL-2.0
//! Scheduler configuration: the diffusers config keys the three schedulers
//! read (defaults: Stable Diffusion 1.5 as the official M3DDM code uses it),
//! read from a JSON object (a manifest's `scheduler_config` or a case's
//! `config`), plus the two numeric tables derived from it: the training
//! `alphas_cumprod` and the inference timesteps, computed as diffusers 0.18.2
//! computes them (numpy's `linspace`/`arange` and half-to-even rounding).

use serde_json::Value;

use super::SchedulerKind;
use crate::engine::error::{EngineError, Result};

/// The most training timesteps a configuration may name (diffusers' use 1000):
/// the tables derived from it are allocated at that length.
pub const MAX_TRAIN_TIMESTEPS: usize = 100_000;

/// How the training betas are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BetaSchedule {
    Linear,
    /// Linear in sqrt(beta) (Stable Diffusion).
    ScaledLinear,
    /// The cosine schedule (`squaredcos_cap_v2`).
    SquaredCosCapV2,
}

/// How the inference timesteps are spread over the training timesteps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestepSpacing {
    Leading,
    Linspace,
    Trailing,
}

/// DPM-Solver++ second-order update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SolverType {
    Midpoint,
    Heun,
}

/// Every setting the schedulers use. Keys a scheduler does not use are ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    pub num_train_timesteps: usize,
    pub beta_start: f64,
    pub beta_end: f64,
    pub beta_schedule: BetaSchedule,
    /// Explicit betas, overriding the schedule.
    pub trained_betas: Option<Vec<f64>>,
    /// PNDM/DDIM: the alpha product past the last step is 1 (else `alphas_cumprod[0]`).
    pub set_alpha_to_one: bool,
    pub steps_offset: i64,
    pub timestep_spacing: TimestepSpacing,
    /// DDIM: clamp the predicted x0 to ±this value.
    pub clip_sample_range: Option<f64>,
    /// DPM-Solver++: 1 or 2.
    pub solver_order: usize,
    pub solver_type: SolverType,
    /// DPM-Solver++: first-order final step when fewer than 15 steps run.
    pub lower_order_final: bool,
    /// DPM-Solver++: timesteps whose log-SNR lies below this are cut off.
    pub lambda_min_clipped: f64,
}

impl SchedulerConfig {
    /// The Stable Diffusion 1.5 configuration of `kind`, as the conformance
    /// cases and the official pipeline use it.
    pub fn sd15(kind: SchedulerKind) -> SchedulerConfig {
        SchedulerConfig {
            num_train_timesteps: 1000,
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: BetaSchedule::ScaledLinear,
            trained_betas: None,
            set_alpha_to_one: false,
            steps_offset: 1,
            timestep_spacing: match kind {
                SchedulerKind::DpmSolverPp => TimestepSpacing::Linspace,
                SchedulerKind::Pndm | SchedulerKind::Ddim => TimestepSpacing::Leading,
            },
            clip_sample_range: None,
            solver_order: 2,
            solver_type: SolverType::Midpoint,
            lower_order_final: true,
            lambda_min_clipped: f64::NEG_INFINITY,
        }
    }

    /// `sd15(kind)` with every key present in the JSON object `json` applied.
    /// Settings this implementation does not provide (another prediction type,
    /// PRK warm-up steps, thresholding, Karras sigmas, ...) are an error that
    /// names the key.
    pub fn from_json(kind: SchedulerKind, json: &Value) -> Result<SchedulerConfig> {
        let obj = json
            .as_object()
            .ok_or_else(|| bad("the scheduler config is not a JSON object".into()))?;
        let mut c = SchedulerConfig::sd15(kind);
        let (mut clip_sample, mut clip_range) = (false, 1.0);
        for (key, value) in obj {
            if value.is_null() {
                continue;
            }
            match key.as_str() {
                "num_train_timesteps" => c.num_train_timesteps = uint(key, value)? as usize,
                "beta_start" => c.beta_start = num(key, value)?,
                "beta_end" => c.beta_end = num(key, value)?,
                "beta_schedule" => {
                    c.beta_schedule = match string(key, value)? {
                        "linear" => BetaSchedule::Linear,
                        "scaled_linear" => BetaSchedule::ScaledLinear,
                        "squaredcos_cap_v2" => BetaSchedule::SquaredCosCapV2,
                        other => return Err(unsupported(key, other)),
                    }
                }
                "trained_betas" => {
                    let list = value
                        .as_array()
                        .ok_or_else(|| bad("`trained_betas` is not a list".into()))?;
                    c.trained_betas =
                        Some(list.iter().map(|v| num(key, v)).collect::<Result<_>>()?);
                }
                "set_alpha_to_one" => c.set_alpha_to_one = boolean(key, value)?,
                "steps_offset" => c.steps_offset = uint(key, value)? as i64,
                "timestep_spacing" => {
                    c.timestep_spacing = match string(key, value)? {
                        "leading" => TimestepSpacing::Leading,
                        "linspace" => TimestepSpacing::Linspace,
                        "trailing" => TimestepSpacing::Trailing,
                        other => return Err(unsupported(key, other)),
                    }
                }
                "prediction_type" => require(key, string(key, value)? == "epsilon", value)?,
                "skip_prk_steps" if kind == SchedulerKind::Pndm => {
                    require(key, boolean(key, value)?, value)?
                }
                "clip_sample" => clip_sample = boolean(key, value)?,
                "clip_sample_range" => clip_range = num(key, value)?,
                "thresholding" | "rescale_betas_zero_snr" | "use_karras_sigmas" => {
                    require(key, !boolean(key, value)?, value)?
                }
                "algorithm_type" => require(key, string(key, value)? == "dpmsolver++", value)?,
                "solver_order" => {
                    c.solver_order = uint(key, value)? as usize;
                    require(key, (1..=2).contains(&c.solver_order), value)?;
                }
                "solver_type" => {
                    c.solver_type = match string(key, value)? {
                        "midpoint" => SolverType::Midpoint,
                        "heun" => SolverType::Heun,
                        other => return Err(unsupported(key, other)),
                    }
                }
                "lower_order_final" => c.lower_order_final = boolean(key, value)?,
                "lambda_min_clipped" => {
                    c.lambda_min_clipped = match value.as_str() {
                        Some("-inf") => f64::NEG_INFINITY,
                        _ => num(key, value)?,
                    }
                }
                "variance_type" => return Err(unsupported(key, &value.to_string())),
                _ => {}
            }
        }
        if clip_sample && kind == SchedulerKind::Ddim {
            c.clip_sample_range = Some(clip_range);
        }
        if !(2..=MAX_TRAIN_TIMESTEPS).contains(&c.num_train_timesteps) {
            return Err(bad(format!(
                "num_train_timesteps must be 2 to {MAX_TRAIN_TIMESTEPS}, got {}",
                c.num_train_timesteps
            )));
        }
        Ok(c)
    }

    /// `alphas_cumprod[t]` for every training timestep: the float32 table that
    /// diffusers builds with torch (betas and alphas in f32, the product
    /// accumulated in f64 and stored as f32), returned as f64. Matching the
    /// reference's table, rather than the exact schedule, removes a systematic
    /// ~1e-6 relative offset from every step.
    pub fn alphas_cumprod(&self) -> Result<Vec<f64>> {
        let n = self.num_train_timesteps;
        let betas: Vec<f32> = match (&self.trained_betas, self.beta_schedule) {
            (Some(list), _) => list.iter().map(|&b| b as f32).collect(),
            (None, BetaSchedule::Linear) => torch_linspace_f32(self.beta_start, self.beta_end, n),
            (None, BetaSchedule::ScaledLinear) => {
                torch_linspace_f32(self.beta_start.sqrt(), self.beta_end.sqrt(), n)
                    .iter()
                    .map(|b| b * b)
                    .collect()
            }
            (None, BetaSchedule::SquaredCosCapV2) => {
                let alpha_bar = |t: f64| {
                    ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                        .cos()
                        .powi(2)
                };
                (0..n)
                    .map(|i| {
                        (1.0 - alpha_bar((i + 1) as f64 / n as f64)
                            / alpha_bar(i as f64 / n as f64))
                        .min(0.999)
                    })
                    .map(|b| b as f32)
                    .collect()
            }
        };
        if betas.len() != n {
            return Err(bad(format!(
                "trained_betas has {} values but num_train_timesteps is {n}",
                betas.len()
            )));
        }
        if betas.iter().any(|b| !(*b > 0.0 && *b < 1.0)) {
            return Err(bad("every beta must lie strictly between 0 and 1".into()));
        }
        let mut product = 1.0f64;
        Ok(betas
            .iter()
            .map(|b| {
                product *= (1.0 - b) as f64;
                product as f32 as f64
            })
            .collect())
    }

    /// The inference timesteps of `kind` for `steps` steps, in the order they run
    /// (diffusers 0.18.2 `set_timesteps`).
    pub fn timesteps(
        &self,
        kind: SchedulerKind,
        steps: usize,
        alphas_cumprod: &[f64],
    ) -> Result<Vec<i64>> {
        let train = self.num_train_timesteps;
        if steps == 0 || steps > train {
            return Err(bad(format!(
                "the number of steps must be between 1 and {train}, got {steps}"
            )));
        }
        let descending = match kind {
            SchedulerKind::Pndm => {
                // Ascending base list, then the PLMS list of `skip_prk_steps`:
                // the second-to-last entry repeated, reversed.
                let mut base = self.spaced_descending(steps, train as i64, steps);
                base.reverse();
                let n = base.len();
                let mut plms = base[..n - 1].to_vec();
                plms.extend_from_slice(&base[n.saturating_sub(2)..n - 1]);
                plms.push(base[n - 1]);
                plms.reverse();
                plms
            }
            SchedulerKind::Ddim => self.spaced_descending(steps, train as i64, steps),
            SchedulerKind::DpmSolverPp => {
                // log-SNR decreases with t; timesteps whose lambda lies below
                // `lambda_min_clipped` are cut from the top.
                let clipped = alphas_cumprod
                    .iter()
                    .filter(|&&a| log_snr(a) < self.lambda_min_clipped)
                    .count();
                let last = (train - clipped) as i64;
                if last < 1 {
                    return Err(bad("lambda_min_clipped removes every timestep".into()));
                }
                let mut list = self.spaced_descending(steps + 1, last, steps);
                if self.timestep_spacing != TimestepSpacing::Trailing {
                    list.pop();
                }
                let mut seen = std::collections::HashSet::new();
                list.retain(|t| seen.insert(*t));
                list
            }
        };
        if descending.iter().any(|&t| t < 0 || t >= train as i64) {
            return Err(bad(format!(
                "the timesteps {descending:?} leave the training range 0..{train}"
            )));
        }
        Ok(descending)
    }

    /// `count` timesteps below `last` in descending order, per the spacing
    /// (`steps` is the inference step count, which sets the trailing stride).
    fn spaced_descending(&self, count: usize, last: i64, steps: usize) -> Vec<i64> {
        let offset = self.steps_offset;
        match self.timestep_spacing {
            TimestepSpacing::Linspace => linspace_like_numpy(0.0, (last - 1) as f64, count)
                .iter()
                .rev()
                .map(|v| v.round_ties_even() as i64)
                .collect(),
            TimestepSpacing::Leading => {
                let ratio = last / count as i64;
                (0..count as i64)
                    .rev()
                    .map(|i| i * ratio + offset)
                    .collect()
            }
            TimestepSpacing::Trailing => {
                let ratio = self.num_train_timesteps as f64 / steps as f64;
                arange_like_numpy(last as f64, 0.0, -ratio)
                    .iter()
                    .map(|v| v.round_ties_even() as i64 - 1)
                    .collect()
            }
        }
    }
}

/// `log(alpha) - log(sigma)` of an alpha product.
pub(super) fn log_snr(alpha_cumprod: f64) -> f64 {
    alpha_cumprod.sqrt().ln() - (1.0 - alpha_cumprod).sqrt().ln()
}

/// numpy's `linspace(start, stop, num)` (endpoint included), value for value.
pub fn linspace_like_numpy(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 0 {
        return Vec::new();
    }
    let div = (num - 1) as f64;
    let delta = stop - start;
    let step = delta / div;
    let mut values: Vec<f64> = (0..num)
        .map(|i| {
            let i = i as f64;
            let scaled = if num == 1 {
                i * delta
            } else if step == 0.0 {
                i / div * delta
            } else {
                i * step
            };
            scaled + start
        })
        .collect();
    if num > 1 {
        values[num - 1] = stop;
    }
    values
}

/// torch's float32 `linspace(start, stop, num)` on CPU: a float32 step, the
/// first half counted up from `start` and the second half down from `stop`,
/// each value one fused multiply-add (as torch's compiled kernel does it).
fn torch_linspace_f32(start: f64, stop: f64, num: usize) -> Vec<f32> {
    let (start, stop) = (start as f32, stop as f32);
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f32;
    (0..num)
        .map(|i| {
            if i < num / 2 {
                step.mul_add(i as f32, start)
            } else {
                (-step).mul_add((num - 1 - i) as f32, stop)
            }
        })
        .collect()
}

/// numpy's `arange(start, stop, step)` for floats: `ceil((stop-start)/step)`
/// values `start + i*delta` with `delta = (start+step) - start`.
fn arange_like_numpy(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let len = ((stop - start) / step).ceil();
    if len.is_nan() || len <= 0.0 {
        return Vec::new();
    }
    let delta = (start + step) - start;
    (0..len as usize)
        .map(|i| {
            if i == 0 {
                start
            } else {
                start + i as f64 * delta
            }
        })
        .collect()
}

fn bad(sentence: String) -> EngineError {
    EngineError::InvalidInput(sentence)
}

fn unsupported(key: &str, value: &str) -> EngineError {
    bad(format!(
        "scheduler setting `{key}` = {value} is not supported"
    ))
}

fn require(key: &str, ok: bool, value: &Value) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(unsupported(key, &value.to_string()))
    }
}

fn num(key: &str, value: &Value) -> Result<f64> {
    value.as_f64().ok_or_else(|| {
        bad(format!(
            "scheduler setting `{key}` must be a number, got {value}"
        ))
    })
}

fn uint(key: &str, value: &Value) -> Result<u64> {
    value.as_u64().ok_or_else(|| {
        bad(format!(
            "scheduler setting `{key}` must be a non-negative integer, got {value}"
        ))
    })
}

fn boolean(key: &str, value: &Value) -> Result<bool> {
    value.as_bool().ok_or_else(|| {
        bad(format!(
            "scheduler setting `{key}` must be true or false, got {value}"
        ))
    })
}

fn string<'a>(key: &str, value: &'a Value) -> Result<&'a str> {
    value.as_str().ok_or_else(|| {
        bad(format!(
            "scheduler setting `{key}` must be a string, got {value}"
        ))
    })
}
