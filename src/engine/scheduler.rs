// SPDX-License-Identifier: MPL-2.0
//! Diffusion schedulers (API stub; owner: numerics).

/// The denoising scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchedulerKind {
    #[default]
    Pndm,
    Ddim,
    DpmSolverPp,
}
