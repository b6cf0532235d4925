// SPDX-License-Identifier: MPL-2.0
//! A scheduler step as what it is for all three solvers: linear maps. A step
//! reads the sample, the noise prediction `eps` and the scheduler's memory
//! slots (PNDM's last predictions and warm-up sample, DPM-Solver++'s data
//! predictions, DDIM's x0); it first writes some slots, each `a·sample + b·eps`
//! (DDIM can clamp its x0), then the next sample as a combination of the
//! sample, eps and the slots as written.
//!
//! The host runs a recipe element by element in f64 (`Memory::apply`); a
//! device runs it as one matrix over the rows `[sample, slots…, predictions…]`
//! (`StepRecipe::linear_map`), eps being a combination of the guidance
//! predictions, so that the latents never leave the device between steps.

use smallvec::SmallVec;

/// A vector a step reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    Sample,
    Eps,
    /// A memory slot, as the step's writes left it.
    Slot(usize),
}

/// `Σ coefficient · term`.
pub type Combo = SmallVec<[(f64, Term); 6]>;

/// A slot the step writes: `sample · sample + eps · eps`, clamped to
/// `[-clamp, clamp]` when set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Write {
    pub slot: usize,
    pub sample: f64,
    pub eps: f64,
    pub clamp: Option<f64>,
}

/// One step: the writes (from the sample and eps before the step), then the next sample.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepRecipe {
    pub writes: SmallVec<[Write; 2]>,
    pub next: Combo,
}

impl StepRecipe {
    /// Whether the step is linear (no clamped write).
    pub fn is_linear(&self) -> bool {
        self.writes.iter().all(|w| w.clamp.is_none())
    }

    /// The step as a matrix `[1 + slots, 1 + slots + eps_weights.len()]`
    /// (row major, written into `out`) over the rows `[sample, slot 0…,
    /// prediction 0…]`: row 0 gives the next sample, row `1 + j` slot `j`
    /// after the step; eps is `Σ eps_weights[i] · prediction i`. `None` for a
    /// step that is not linear.
    pub fn linear_map(&self, slots: usize, eps_weights: &[f64], out: &mut Vec<f32>) -> Option<()> {
        if !self.is_linear() {
            return None;
        }
        let rows = 1 + slots;
        let cols = rows + eps_weights.len();
        let mut matrix = vec![0.0f64; rows * cols];
        // A term of the step as a row over the inputs, scaled by `scale`.
        let mut add = |row: usize, scale: f64, term: Term, writes: &[Write]| {
            let put = |term: Term, c: f64, m: &mut Vec<f64>| match term {
                Term::Sample => m[row * cols] += c,
                Term::Eps => {
                    for (i, w) in eps_weights.iter().enumerate() {
                        m[row * cols + rows + i] += c * w;
                    }
                }
                Term::Slot(j) => m[row * cols + 1 + j] += c,
            };
            match term {
                Term::Slot(j) => match writes.iter().find(|w| w.slot == j) {
                    Some(w) => {
                        put(Term::Sample, scale * w.sample, &mut matrix);
                        put(Term::Eps, scale * w.eps, &mut matrix);
                    }
                    None => put(term, scale, &mut matrix),
                },
                _ => put(term, scale, &mut matrix),
            }
        };
        for &(c, term) in &self.next {
            add(0, c, term, &self.writes);
        }
        for j in 0..slots {
            add(1 + j, 1.0, Term::Slot(j), &self.writes);
        }
        out.clear();
        out.extend(matrix.iter().map(|&v| v as f32));
        Some(())
    }
}

/// The host values of a scheduler's memory slots, kept from run to run.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    slots: Vec<Vec<f32>>,
}

impl Memory {
    /// Runs `recipe` on the host: per element, in f64.
    pub fn apply(&mut self, recipe: &StepRecipe, eps: &[f32], sample: &mut [f32]) {
        let len = sample.len();
        for w in &recipe.writes {
            if self.slots.len() <= w.slot {
                self.slots.resize_with(w.slot + 1, Vec::new);
            }
            let slot = &mut self.slots[w.slot];
            slot.resize(len, 0.0);
            for ((out, &x), &e) in slot.iter_mut().zip(sample.iter()).zip(eps) {
                let v = w.sample * x as f64 + w.eps * e as f64;
                *out = w.clamp.map_or(v, |r| v.clamp(-r, r)) as f32;
            }
        }
        let mut sample_coeff = 0.0;
        let mut terms: SmallVec<[(f64, &[f32]); 6]> = SmallVec::new();
        for &(c, term) in &recipe.next {
            match term {
                Term::Sample => sample_coeff += c,
                Term::Eps => terms.push((c, eps)),
                Term::Slot(j) => terms.push((c, &self.slots[j])),
            }
        }
        for (i, x) in sample.iter_mut().enumerate() {
            let rest: f64 = terms.iter().map(|(c, v)| c * v[i] as f64).sum();
            *x = (sample_coeff * *x as f64 + rest) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smallvec::smallvec;

    /// A recipe with every kind of term: slot 0 written from sample and eps,
    /// slot 1 kept, the next sample reading all of them.
    fn recipe(clamp: Option<f64>) -> StepRecipe {
        StepRecipe {
            writes: smallvec![Write {
                slot: 0,
                sample: 0.5,
                eps: -2.0,
                clamp
            }],
            next: smallvec![
                (1.5, Term::Sample),
                (0.25, Term::Eps),
                (-1.0, Term::Slot(0)),
                (3.0, Term::Slot(1)),
            ],
        }
    }

    #[test]
    fn the_linear_map_computes_what_the_host_computes() {
        let (sample, slot1) = ([1.0f32, -2.0, 0.5], [4.0f32, 0.0, -1.0]);
        let predictions = [[0.5f32, 1.0, 2.0], [-1.0, 3.0, 0.25]];
        let weights = [-1.0, 2.0];
        let eps: Vec<f32> = (0..3)
            .map(|i| {
                (weights[0] * predictions[0][i] as f64 + weights[1] * predictions[1][i] as f64)
                    as f32
            })
            .collect();
        let mut memory = Memory {
            slots: vec![vec![9.0; 3], slot1.to_vec()],
        };
        let mut host = sample.to_vec();
        memory.apply(&recipe(None), &eps, &mut host);

        let mut map = Vec::new();
        recipe(None).linear_map(2, &weights, &mut map).unwrap();
        let (rows, cols) = (3, 5);
        assert_eq!(map.len(), rows * cols);
        let inputs = |i: usize| {
            [
                sample[i],
                9.0,
                slot1[i],
                predictions[0][i],
                predictions[1][i],
            ]
        };
        for i in 0..3 {
            let row =
                |r: usize| -> f32 { (0..cols).map(|c| map[r * cols + c] * inputs(i)[c]).sum() };
            assert!((row(0) - host[i]).abs() < 1e-5, "next sample {i}");
            assert!((row(1) - memory.slots[0][i]).abs() < 1e-5, "slot 0 {i}");
            assert_eq!(row(2), slot1[i], "slot 1 is kept");
        }
    }

    #[test]
    fn a_clamped_step_has_no_linear_map() {
        let mut map = Vec::new();
        assert!(recipe(Some(1.0)).linear_map(2, &[1.0], &mut map).is_none());
        let mut memory = Memory {
            slots: vec![Vec::new(), vec![0.0]],
        };
        memory.apply(&recipe(Some(1.0)), &[0.0], &mut [10.0]);
        assert_eq!(memory.slots[0], vec![1.0], "0.5 · 10 clamped to 1");
    }
}
