// SPDX-License-Identifier: MPL-2.0
//! The coarse-to-fine stride list of a plan, as data: the official 15, 5, 1
//! (M3DDM's `src/inference.py`, and M3DDM+'s `--strides` default), or
//! another list such as M3DDM+'s `evaluate.py` 5, 3, 1. A list is checked
//! once, when it is made: strictly decreasing, ending in 1, each stride
//! between 1 and [`MAX_STRIDE`]; every plan built from it then covers every
//! frame at its last pass.

use std::fmt;

use crate::engine::error::{EngineError, Result};

/// The largest stride accepted: the official coarsest. Neither M3DDM's code
/// nor M3DDM+'s runs a coarser one by default, and the U-Net's frame-rate
/// input `fps // stride` is already 2 at 30 frames/s.
pub const MAX_STRIDE: usize = 15;

/// A checked coarse-to-fine stride list (see the module notes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Strides(Vec<usize>);

impl Default for Strides {
    /// The official list, 15, 5, 1.
    fn default() -> Self {
        Strides::official()
    }
}

impl Strides {
    /// The official M3DDM list, 15, 5, 1.
    pub fn official() -> Strides {
        Strides(vec![15, 5, 1])
    }

    /// A list checked as the module notes say, with a sentence naming what
    /// is wrong with a bad one.
    pub fn new(strides: Vec<usize>) -> Result<Strides> {
        let bad = |why: String| {
            Err(EngineError::InvalidInput(format!(
                "the stride list {} {why}",
                list_text(&strides)
            )))
        };
        if strides.is_empty() {
            return Err(EngineError::InvalidInput(
                "the stride list is empty: give at least the stride 1 (e.g. 15,5,1)".into(),
            ));
        }
        if let Some(&s) = strides.iter().find(|&&s| s == 0 || s > MAX_STRIDE) {
            return bad(format!(
                "has the stride {s}: each stride must be 1 to {MAX_STRIDE} frames"
            ));
        }
        if let Some(pair) = strides.windows(2).find(|pair| pair[1] >= pair[0]) {
            return bad(format!(
                "is not strictly decreasing ({} then {}): the passes go from coarse to fine",
                pair[0], pair[1]
            ));
        }
        if strides.last() != Some(&1) {
            return bad("does not end in 1: the last pass must make every frame".into());
        }
        Ok(Strides(strides))
    }

    /// Parses a comma-separated list (`"15,5,1"`, spaces allowed).
    pub fn parse(text: &str) -> Result<Strides> {
        let strides = text
            .split(',')
            .map(|entry| {
                entry.trim().parse::<usize>().map_err(|_| {
                    EngineError::InvalidInput(format!(
                        "the stride list `{text}` has `{}`, not a whole number of frames \
                         (write e.g. 15,5,1)",
                        entry.trim()
                    ))
                })
            })
            .collect::<Result<Vec<usize>>>()?;
        Strides::new(strides)
    }

    pub fn as_slice(&self) -> &[usize] {
        &self.0
    }

    /// The stride of the keyframe pass of a two-pass run: the first of a
    /// list of two or more (a single stride has no coarse pass).
    pub fn keyframe_stride(&self) -> Option<usize> {
        (self.0.len() > 1).then_some(self.0[0])
    }

    /// The coarsest stride.
    pub fn coarsest(&self) -> usize {
        self.0[0]
    }

    /// The strides a clip of `total_frames` frames runs at: only 1 under
    /// `COARSE_MIN_FRAMES` frames (as both codes do), else the list.
    pub fn for_frames(&self, total_frames: usize) -> &[usize] {
        if total_frames < super::COARSE_MIN_FRAMES {
            &[1]
        } else {
            &self.0
        }
    }
}

impl fmt::Display for Strides {
    /// The list as it is parsed: `15,5,1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&list_text(&self.0))
    }
}

fn list_text(strides: &[usize]) -> String {
    strides
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
