// SPDX-License-Identifier: MPL-2.0
//! The step of each solver as a recipe (`recipe.rs`): diffusers 0.18.2's
//! arithmetic, with the multistep memory as numbered slots.
//!
//! - PNDM (PLMS with the `skip_prk_steps` warm-up): the last four predictions
//!   in the ring of slots 0–3, the warm-up sample in slot 4;
//! - DDIM (eta 0): x0 in slot 0, clamped where the configuration clips;
//! - DPM-Solver++: the last `solver_order` data predictions in the ring.

use smallvec::smallvec;

use super::recipe::{Combo, StepRecipe, Term, Write};
use super::{EngineError, Result, Scheduler, SolverType};

/// PNDM's ring of predictions, and the slot after it for the warm-up sample.
const PLMS_RING: usize = 4;
pub(super) const PLMS_WARMUP_SLOT: usize = PLMS_RING;

impl Scheduler {
    /// Puts a new entry in the ring of `size` slots; returns its slot.
    fn push_ring(&mut self, size: usize) -> usize {
        let h = &mut self.history;
        let slot = h.ring_head;
        h.ring_head = (h.ring_head + 1) % size;
        h.ring_len = (h.ring_len + 1).min(size);
        slot
    }

    /// The slot of the `k`-th newest entry of the ring (`k` ≥ 1).
    fn ring_entry(&self, k: usize, size: usize) -> Term {
        Term::Slot((self.history.ring_head + size - k) % size)
    }

    /// PNDM's linear multistep (PLMS) step with the `skip_prk_steps` warm-up:
    /// the second call averages the first two predictions and restarts from
    /// the first call's sample, one stride higher.
    pub(super) fn plms_recipe(&mut self, t: i64) -> Result<StepRecipe> {
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

        let mut recipe = StepRecipe::default();
        if !warmup_second {
            let slot = self.push_ring(PLMS_RING);
            recipe.writes.push(Write {
                slot,
                sample: 0.0,
                eps: 1.0,
                clamp: None,
            });
        }
        let n = self.history.ring_len;
        let base = if n == 1 && self.history.counter == 0 {
            recipe.writes.push(Write {
                slot: PLMS_WARMUP_SLOT,
                sample: 1.0,
                eps: 0.0,
                clamp: None,
            });
            self.history.warmup_held = true;
            Term::Sample
        } else if n == 1 && warmup_second {
            if !self.history.warmup_held {
                return Err(EngineError::InvalidInput(
                    "the scheduler's PNDM warm-up state is missing: call `reset` before a new run"
                        .into(),
                ));
            }
            self.history.warmup_held = false;
            Term::Slot(PLMS_WARMUP_SLOT)
        } else {
            Term::Sample
        };
        let last = |k: usize| self.ring_entry(k, PLMS_RING);
        let eps_terms: Combo = match n {
            1 if warmup_second => smallvec![(0.5, Term::Eps), (0.5, last(1))],
            1 => smallvec![(1.0, Term::Eps)],
            2 => smallvec![(1.5, last(1)), (-0.5, last(2))],
            3 => smallvec![
                (23.0 / 12.0, last(1)),
                (-16.0 / 12.0, last(2)),
                (5.0 / 12.0, last(3))
            ],
            _ => smallvec![
                (55.0 / 24.0, last(1)),
                (-59.0 / 24.0, last(2)),
                (37.0 / 24.0, last(3)),
                (-9.0 / 24.0, last(4))
            ],
        };
        recipe.next.push((sample_coeff, base));
        recipe.next.extend(
            eps_terms
                .into_iter()
                .map(|(w, term)| (-eps_coeff * w, term)),
        );
        Ok(recipe)
    }

    /// DDIM with eta 0 (deterministic), optional x0 clipping.
    pub(super) fn ddim_recipe(&mut self, t: i64) -> Result<StepRecipe> {
        let (a_t, a_prev) = (
            self.alpha_at(t)?,
            self.alpha_or_final(t - self.step_ratio())?,
        );
        let (sqrt_a, sqrt_b) = (a_t.sqrt(), (1.0 - a_t).sqrt());
        let (sqrt_a_prev, sqrt_b_prev) = (a_prev.sqrt(), (1.0 - a_prev).sqrt());
        Ok(StepRecipe {
            writes: smallvec![Write {
                slot: 0,
                sample: 1.0 / sqrt_a,
                eps: -sqrt_b / sqrt_a,
                clamp: self.config.clip_sample_range,
            }],
            next: smallvec![(sqrt_a_prev, Term::Slot(0)), (sqrt_b_prev, Term::Eps)],
        })
    }

    /// Multistep DPM-Solver++ in data-prediction form.
    pub(super) fn dpm_recipe(&mut self, t: i64) -> Result<StepRecipe> {
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
        let steps_taken = self.history.counter.min(order);
        let slot = self.push_ring(order);
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
            || self.history.ring_len < 2;
        let (m0, m1) = (self.ring_entry(1, order), self.ring_entry(2, order));
        let mut next: Combo = smallvec![(ratio, Term::Sample), (-alpha_t * decay, m0)];
        if !first_order {
            let (alpha_s1, sigma_s1) = self.alpha_sigma(self.timesteps[index - 1])?;
            let r0 = (lambda_s0 - lambda(alpha_s1, sigma_s1)) / hstep;
            let d1_coeff = match self.config.solver_type {
                SolverType::Midpoint => -0.5 * alpha_t * decay,
                SolverType::Heun => alpha_t * (decay / hstep + 1.0),
            };
            next.push((d1_coeff / r0, m0));
            next.push((-d1_coeff / r0, m1));
        }
        Ok(StepRecipe {
            writes: smallvec![Write {
                slot,
                sample: 1.0 / alpha_s,
                eps: -sigma_s / alpha_s,
                clamp: None,
            }],
            next,
        })
    }
}
