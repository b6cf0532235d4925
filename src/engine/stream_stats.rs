// SPDX-License-Identifier: MPL-2.0
//! The run counters a stream of windows keeps for the element's statistics
//! (`StreamOutpainter`, the two-pass streams).

use std::time::Duration;

use super::clip;

/// Run counters for the element's statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamStats {
    pub windows_run: u64,
    pub window_time: Duration,
    /// Windows run by each model of the pool.
    pub windows_by_worker: Vec<u64>,
    /// Scene cuts found among the frames pushed.
    pub cuts: u64,
    /// Bytes the U-Net calls copied between host and ONNX Runtime memory (`Denoiser::transfer_bytes`).
    pub transfer_bytes: u64,
}

impl StreamStats {
    /// The counters of one clip run.
    pub fn of_clip(output: &clip::ClipOutput) -> StreamStats {
        StreamStats {
            windows_run: output.windows_run as u64,
            window_time: output.window_time,
            windows_by_worker: output.windows_by_worker.iter().map(|&n| n as u64).collect(),
            cuts: 0,
            transfer_bytes: output.transfer_bytes,
        }
    }

    /// What was counted since `earlier` (an earlier copy of these counters).
    pub fn since(&self, earlier: &StreamStats) -> StreamStats {
        StreamStats {
            windows_run: self.windows_run.saturating_sub(earlier.windows_run),
            window_time: self.window_time.saturating_sub(earlier.window_time),
            windows_by_worker: self
                .windows_by_worker
                .iter()
                .enumerate()
                .map(|(k, n)| {
                    n.saturating_sub(earlier.windows_by_worker.get(k).copied().unwrap_or(0))
                })
                .collect(),
            cuts: self.cuts.saturating_sub(earlier.cuts),
            transfer_bytes: self.transfer_bytes.saturating_sub(earlier.transfer_bytes),
        }
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &StreamStats) {
        self.cuts += other.cuts;
        self.transfer_bytes += other.transfer_bytes;
        self.windows_run += other.windows_run;
        self.window_time += other.window_time;
        if self.windows_by_worker.len() < other.windows_by_worker.len() {
            self.windows_by_worker
                .resize(other.windows_by_worker.len(), 0);
        }
        for (total, n) in self
            .windows_by_worker
            .iter_mut()
            .zip(&other.windows_by_worker)
        {
            *total += n;
        }
    }
}
