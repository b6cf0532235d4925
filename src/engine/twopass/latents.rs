// SPDX-License-Identifier: MPL-2.0
//! The latents of a shot's plan: its 16 global latents and one latent per
//! keyframe. The keyframe pass holds them in memory; a plan read from a file
//! leaves them there and reads one when a window needs it, so that the
//! streaming pass holds no latent of the plan whatever the file's length
//! (about 1 KiB per source frame at canvas 256: 1 GiB for a 15-hour file).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::error::{EngineError, Result};
use crate::engine::planner::GLOBAL_FRAMES;

/// A shot's global and keyframe latents, in memory or in a plan file.
#[derive(Debug, Clone)]
pub struct PlanLatents {
    /// The keyframes, ascending.
    keyframes: Vec<usize>,
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Held {
        global: Vec<f32>,
        /// In the order of `keyframes`.
        latents: Vec<Vec<f32>>,
    },
    InFile(Arc<FileRegion>),
}

/// Where a shot's latents lie in a plan file: little-endian f32, the 16
/// global latents, then each keyframe's in ascending frame order.
#[derive(Debug)]
struct FileRegion {
    file: Arc<File>,
    path: PathBuf,
    first_byte: u64,
    latent_len: usize,
}

impl FileRegion {
    /// The `count` latents from the `index`-th of the region.
    fn read(&self, index: usize, count: usize) -> Result<Vec<f32>> {
        let mut bytes = vec![0u8; count * self.latent_len * 4];
        let at = self.first_byte + (index * self.latent_len * 4) as u64;
        self.file.read_exact_at(&mut bytes, at).map_err(|e| {
            EngineError::InvalidInput(format!(
                "cannot read the plan file {} at byte {at}: {e}",
                self.path.display()
            ))
        })?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

impl PlanLatents {
    /// Latents in memory: `global` `[16,4,C/8,C/8]`, one `[4,C/8,C/8]` per keyframe.
    pub fn held(global: Vec<f32>, keyframes: BTreeMap<usize, Vec<f32>>) -> PlanLatents {
        let (keyframes, latents) = keyframes.into_iter().unzip();
        PlanLatents {
            keyframes,
            source: Source::Held { global, latents },
        }
    }

    /// Latents of `latent_len` values left in `file` from `first_byte` on
    /// (the caller has checked that they are all there).
    pub(super) fn in_file(
        file: Arc<File>,
        path: &Path,
        first_byte: u64,
        latent_len: usize,
        keyframes: Vec<usize>,
    ) -> PlanLatents {
        PlanLatents {
            keyframes,
            source: Source::InFile(Arc::new(FileRegion {
                file,
                path: path.to_owned(),
                first_byte,
                latent_len,
            })),
        }
    }

    /// The frames with a keyframe latent, ascending.
    pub fn keyframes(&self) -> &[usize] {
        &self.keyframes
    }

    pub fn has_keyframe(&self, frame: usize) -> bool {
        self.keyframes.binary_search(&frame).is_ok()
    }

    /// The 16 global latents `[16,4,C/8,C/8]`.
    pub fn global(&self) -> Result<Vec<f32>> {
        match &self.source {
            Source::Held { global, .. } => Ok(global.clone()),
            Source::InFile(region) => region.read(0, GLOBAL_FRAMES),
        }
    }

    /// Frame `frame`'s keyframe latent, `None` when it is not a keyframe.
    pub fn keyframe(&self, frame: usize) -> Result<Option<Vec<f32>>> {
        let Ok(rank) = self.keyframes.binary_search(&frame) else {
            return Ok(None);
        };
        match &self.source {
            Source::Held { latents, .. } => Ok(Some(latents[rank].clone())),
            Source::InFile(region) => region.read(GLOBAL_FRAMES + rank, 1).map(Some),
        }
    }

    /// The values of the global latents and of each keyframe's, when every
    /// latent has `latent_len` of them; else the first latent that has not.
    pub(super) fn check_lengths(&self, latent_len: usize) -> std::result::Result<(), String> {
        match &self.source {
            Source::Held { global, latents } => {
                if global.len() != GLOBAL_FRAMES * latent_len {
                    return Err(format!("the global latents have {} values", global.len()));
                }
                match latents.iter().position(|l| l.len() != latent_len) {
                    Some(k) => Err(format!(
                        "the latent of frame {} has {} values",
                        self.keyframes[k],
                        latents[k].len()
                    )),
                    None => Ok(()),
                }
            }
            Source::InFile(region) if region.latent_len != latent_len => Err(format!(
                "the file's latents have {} values",
                region.latent_len
            )),
            Source::InFile(_) => Ok(()),
        }
    }

    /// Every value, global latents first, then the keyframes' in ascending
    /// frame order: what a plan file holds of the shot.
    pub(super) fn for_each_latent(&self, mut each: impl FnMut(&[f32]) -> Result<()>) -> Result<()> {
        each(&self.global()?)?;
        for &frame in &self.keyframes {
            let latent = self.keyframe(frame)?.expect("a listed keyframe");
            each(&latent)?;
        }
        Ok(())
    }
}

/// Two plans' latents are equal when they have the same values, wherever they are.
impl PartialEq for PlanLatents {
    fn eq(&self, other: &PlanLatents) -> bool {
        let same_values = || -> Result<bool> {
            if self.global()? != other.global()? {
                return Ok(false);
            }
            for &frame in &self.keyframes {
                if self.keyframe(frame)? != other.keyframe(frame)? {
                    return Ok(false);
                }
            }
            Ok(true)
        };
        self.keyframes == other.keyframes && same_values().unwrap_or(false)
    }
}
