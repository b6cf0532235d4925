// SPDX-License-Identifier: MPL-2.0
//! A cheap scene-cut detector. It reads the whole source frame scaled to a
//! fixed `ANALYSIS_SIDE²` RGB image (never the content box on the model's
//! canvas, whose size changes with the model, the aspect and the fill: a
//! frame's score depends on the source frames alone, so every front end finds
//! the same cuts). That image's luma is averaged to a 32×32 thumbnail; the mean
//! absolute difference from the previous thumbnail (0..1 of the full luma
//! range) is high at a cut but also during fast motion, so the score is, as
//! in FFmpeg's `select=gt(scene,…)`, the smaller of that difference and its
//! change from the previous frame's difference: steady motion scores low, a
//! cut (one sudden jump) scores high. README "Scene cuts" has the scores of
//! real footage and the threshold they give (`RECOMMENDED_THRESHOLD`).

/// Side of the square image the detector reads.
pub const ANALYSIS_SIDE: usize = 128;

/// The threshold the measurements support: every cut of an edited clip scored
/// at least 0.12, no frame inside a continuous shot above 0.034 (README).
pub const RECOMMENDED_THRESHOLD: f64 = 0.08;

use super::pixels::RgbImage;

/// Thumbnail side (`ANALYSIS_SIDE` is a multiple of it: equal cells).
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

    /// The score of `frame` (the source at `ANALYSIS_SIDE²`; any size works)
    /// against the frames before it (0 for the first).
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

    /// Whether a score makes its frame start a new shot.
    pub fn is_cut(&self, score: f32) -> bool {
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

    /// The cuts `detector` finds among `frames`.
    fn cuts_of(detector: &mut CutDetector, frames: impl Iterator<Item = RgbImage>) -> Vec<usize> {
        frames
            .enumerate()
            .filter(|(_, frame)| {
                let score = detector.score(frame);
                detector.is_cut(score)
            })
            .map(|(k, _)| k)
            .collect()
    }

    #[test]
    fn a_cut_scores_high_and_motion_low() {
        let mut detector = CutDetector::new(0.15);
        let frames = (0..40u32).map(|k| shot_frame(if k < 25 { 0 } else { 1 }, k * 3));
        assert_eq!(cuts_of(&mut detector, frames), vec![25]);
    }

    #[test]
    fn threshold_zero_never_cuts_and_tiny_frames_work() {
        let mut detector = CutDetector::new(0.0);
        let frames = (0..10).map(|k| shot_frame((k % 2) as u8, 0));
        assert_eq!(cuts_of(&mut detector, frames), Vec::<usize>::new());
        let mut detector = CutDetector::new(0.1);
        let tiny = RgbImage::filled(2, 2, [0, 0, 0]);
        let bright = RgbImage::filled(2, 2, [255, 255, 255]);
        assert_eq!(cuts_of(&mut detector, [tiny, bright].into_iter()), vec![1]);
    }

    #[test]
    fn the_score_is_the_thumbnails_mean_luma_change() {
        // Black then mid-grey: every cell changes by 128/255, the change before was 0.
        let mut detector = CutDetector::new(0.1);
        let side = ANALYSIS_SIDE as u32;
        let frame = |v| RgbImage::filled(side, side, [v, v, v]);
        assert_eq!(detector.score(&frame(0)), 0.0);
        let score = detector.score(&frame(128));
        assert!((score - 128.0 / 255.0).abs() < 1e-5, "{score}");
        // The same change again scores 0 (steady change, as steady motion).
        assert!(detector.score(&frame(0)) < 1e-5);
    }
}
