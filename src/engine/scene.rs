// SPDX-License-Identifier: MPL-2.0
//! A cheap scene-cut detector on the frames the model sees (the source scaled
//! to the canvas content box). Each frame is reduced to a 32×32 luma
//! thumbnail; the mean absolute difference from the previous thumbnail (0..1)
//! is high at a cut but also during fast motion, so the score is, as in
//! FFmpeg's `select=gt(scene,…)`, the smaller of that difference and its
//! change from the previous frame's difference: steady motion scores low, a
//! cut (one sudden jump) scores high.

use super::pixels::RgbImage;

/// Thumbnail side.
const THUMB: usize = 32;

/// Says which frames start a new shot.
#[derive(Debug, Clone)]
pub struct CutDetector {
    threshold: f32,
    previous: Option<Vec<f32>>,
    previous_difference: f32,
}

impl CutDetector {
    /// A detector whose frames with a score above `threshold` (0..1) are cuts;
    /// 0 (or less) never reports a cut.
    pub fn new(threshold: f32) -> CutDetector {
        CutDetector {
            threshold,
            previous: None,
            previous_difference: 0.0,
        }
    }

    /// The score of `frame` against the frames before it (0 for the first).
    pub fn score(&mut self, frame: &RgbImage) -> f32 {
        let thumb = thumbnail(frame);
        let difference = match &self.previous {
            Some(previous) => {
                thumb
                    .iter()
                    .zip(previous)
                    .map(|(a, b)| (a - b).abs())
                    .sum::<f32>()
                    / thumb.len() as f32
            }
            None => 0.0,
        };
        let score = difference.min((difference - self.previous_difference).abs());
        self.previous = Some(thumb);
        self.previous_difference = difference;
        score
    }

    /// Whether `frame` starts a new shot.
    pub fn is_cut(&mut self, frame: &RgbImage) -> bool {
        let score = self.score(frame);
        self.threshold > 0.0 && score > self.threshold
    }

    /// Forgets the previous frame (a new stream).
    pub fn reset(&mut self) {
        self.previous = None;
        self.previous_difference = 0.0;
    }
}

/// The frame's luma (0..1) averaged over a `THUMB × THUMB` grid of cells.
fn thumbnail(frame: &RgbImage) -> Vec<f32> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let mut sums = vec![0.0f32; THUMB * THUMB];
    let mut counts = vec![0u32; THUMB * THUMB];
    for y in 0..h {
        let cell_row = y * THUMB / h.max(1);
        for x in 0..w {
            let at = (y * w + x) * 3;
            let [r, g, b] = [frame.data[at], frame.data[at + 1], frame.data[at + 2]];
            let luma = (0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32) / 255.0;
            let cell = cell_row * THUMB + x * THUMB / w.max(1);
            sums[cell] += luma;
            counts[cell] += 1;
        }
    }
    // Cells no pixel fell into (frames smaller than the grid) take the mean.
    let total: f32 = sums.iter().sum();
    let mean = total / counts.iter().sum::<u32>().max(1) as f32;
    sums.iter()
        .zip(&counts)
        .map(|(&s, &n)| if n == 0 { mean } else { s / n as f32 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of one shot: a gradient with a bar at `offset` (motion).
    fn shot_frame(shot: u8, offset: u32) -> RgbImage {
        let (w, h) = (64u32, 36u32);
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let bar = (x + 64 - offset % 64) % 64 < 6;
                let base = if shot == 0 {
                    (x * 3) as u8
                } else {
                    200 - (y * 4) as u8
                };
                let v = if bar { 250 } else { base };
                data.extend_from_slice(&[v, v / 2 + shot * 60, 255 - v]);
            }
        }
        RgbImage {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn a_cut_scores_high_and_motion_low() {
        let mut detector = CutDetector::new(0.15);
        let mut cuts = Vec::new();
        for k in 0..40u32 {
            let shot = if k < 25 { 0 } else { 1 };
            if detector.is_cut(&shot_frame(shot, k * 3)) {
                cuts.push(k);
            }
        }
        assert_eq!(cuts, vec![25]);
    }

    #[test]
    fn threshold_zero_never_cuts_and_tiny_frames_work() {
        let mut detector = CutDetector::new(0.0);
        for k in 0..10 {
            assert!(!detector.is_cut(&shot_frame((k % 2) as u8, 0)));
        }
        let mut detector = CutDetector::new(0.1);
        let tiny = RgbImage::filled(2, 2, [0, 0, 0]);
        let bright = RgbImage::filled(2, 2, [255, 255, 255]);
        assert!(!detector.is_cut(&tiny));
        assert!(detector.is_cut(&bright));
    }
}
