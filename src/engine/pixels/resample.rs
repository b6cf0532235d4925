// SPDX-License-Identifier: MPL-2.0
//! Separable resampling and box filtering of packed RGB (owner: pixels).
//!
//! Each axis gets a table of taps: every output sample reads `taps`
//! consecutive input samples from `start` with fixed weights. Two kernels:
//! - bilinear on half-pixel centres, OpenCV `INTER_LINEAR` semantics
//!   (`sx = (dx + 0.5) * scale - 0.5`, clamped to the edge samples), used for
//!   enlargements and for shrinks by at most 2× on that axis;
//! - area average (OpenCV `INTER_AREA` semantics: each output sample is the
//!   coverage-weighted mean of the input interval it spans), used for shrinks by
//!   more than 2×, where bilinear would skip input samples and alias.
//!
//! The horizontal pass runs first over the input rows into an `f32` buffer,
//! then the vertical pass combines a few of those rows per output row. Tables
//! are built once per call; no allocation happens per pixel. `box_line` is the
//! running-sum box filter that the blur and the init fill share.

/// The taps of one axis: output sample `i` is
/// `sum(weights[i * taps + t] * input[start[i] + t])` for `t < taps`.
pub(crate) struct AxisTaps {
    pub start: Vec<usize>,
    pub weights: Vec<f32>,
    pub taps: usize,
}

impl AxisTaps {
    /// The kernel for mapping `src_len` samples onto `dst_len`: bilinear up to a
    /// 2× shrink, area average beyond.
    pub fn for_resize(src_len: usize, dst_len: usize) -> AxisTaps {
        let scale = src_len as f64 / dst_len as f64;
        if scale > 2.0 {
            AxisTaps::area(src_len, dst_len)
        } else {
            AxisTaps::bilinear(src_len, dst_len, scale)
        }
    }

    /// Bilinear taps on half-pixel centres with an explicit `scale` (input
    /// samples per output sample); positions outside the input clamp to its edges.
    pub fn bilinear(src_len: usize, dst_len: usize, scale: f64) -> AxisTaps {
        let taps = src_len.min(2);
        AxisTaps::from_pairs(src_len, dst_len, taps, |dst, push| {
            let position = (dst as f64 + 0.5) * scale - 0.5;
            let mut left = position.floor();
            let mut frac = position - left;
            if left < 0.0 {
                left = 0.0;
                frac = 0.0;
            }
            if left >= (src_len - 1) as f64 {
                left = (src_len - 1) as f64;
                frac = 0.0;
            }
            let left = left as usize;
            push(left, 1.0 - frac);
            if frac > 0.0 {
                push(left + 1, frac);
            }
        })
    }

    /// Area-average taps: output sample `i` averages the input interval
    /// `[i * scale, (i + 1) * scale)`, partially covered samples weighted by coverage.
    pub fn area(src_len: usize, dst_len: usize) -> AxisTaps {
        let scale = src_len as f64 / dst_len as f64;
        let taps = (scale.ceil() as usize + 1).min(src_len);
        AxisTaps::from_pairs(src_len, dst_len, taps, |dst, push| {
            let begin = dst as f64 * scale;
            let end = ((dst + 1) as f64 * scale).min(src_len as f64);
            let mut sample = begin.floor() as usize;
            while (sample as f64) < end && sample < src_len {
                let covered = end.min(sample as f64 + 1.0) - begin.max(sample as f64);
                if covered > 0.0 {
                    push(sample, covered / scale);
                }
                sample += 1;
            }
        })
    }

    /// Packs `(input index, weight)` pairs produced per output sample into a
    /// fixed-width table; weights of each output are normalised to sum to 1.
    fn from_pairs(
        src_len: usize,
        dst_len: usize,
        taps: usize,
        mut pairs_of: impl FnMut(usize, &mut dyn FnMut(usize, f64)),
    ) -> AxisTaps {
        let mut start = Vec::with_capacity(dst_len);
        let mut weights = vec![0f32; dst_len * taps];
        let mut pairs: Vec<(usize, f64)> = Vec::with_capacity(taps + 1);
        for dst in 0..dst_len {
            pairs.clear();
            pairs_of(dst, &mut |index, weight| pairs.push((index, weight)));
            let first = pairs.iter().map(|&(index, _)| index).min().unwrap_or(0);
            let first = first.min(src_len - taps);
            let total: f64 = pairs.iter().map(|&(_, weight)| weight).sum();
            let row = &mut weights[dst * taps..(dst + 1) * taps];
            for &(index, weight) in &pairs {
                row[index - first] += (weight / total) as f32;
            }
            start.push(first);
        }
        AxisTaps {
            start,
            weights,
            taps,
        }
    }
}

/// A read-only region of a packed RGB image (3 samples per pixel): rows of
/// `row_len` samples, the region starting at column `x0` and row `y0`.
pub(crate) struct Region<'a, T> {
    pub data: &'a [T],
    pub row_len: usize,
    pub x0: usize,
    pub y0: usize,
    pub height: usize,
}

/// Resamples `src` with the given axis tables and hands each finished output row
/// (`x_taps.start.len() * 3` values, not yet rounded) to `emit_row`.
pub(crate) fn resample_rows<T: Copy + Into<f32>>(
    src: &Region<'_, T>,
    x_taps: &AxisTaps,
    y_taps: &AxisTaps,
    mut emit_row: impl FnMut(usize, &[f32]),
) {
    let taps = x_taps.taps;
    let out_row_len = x_taps.start.len() * 3;
    let mut horizontal = vec![0f32; src.height * out_row_len];
    for row in 0..src.height {
        let input = &src.data[(src.y0 + row) * src.row_len + src.x0 * 3..];
        let output = &mut horizontal[row * out_row_len..(row + 1) * out_row_len];
        for ((out, &start), weights) in output
            .chunks_exact_mut(3)
            .zip(&x_taps.start)
            .zip(x_taps.weights.chunks_exact(taps))
        {
            let mut acc = [0f32; 3];
            for (&weight, pixel) in weights
                .iter()
                .zip(input[start * 3..(start + taps) * 3].chunks_exact(3))
            {
                acc[0] += weight * pixel[0].into();
                acc[1] += weight * pixel[1].into();
                acc[2] += weight * pixel[2].into();
            }
            out.copy_from_slice(&acc);
        }
    }
    let mut accumulator = vec![0f32; out_row_len];
    for dst_row in 0..y_taps.start.len() {
        accumulator.fill(0.0);
        let weights = &y_taps.weights[dst_row * y_taps.taps..(dst_row + 1) * y_taps.taps];
        for (tap, &weight) in weights.iter().enumerate() {
            if weight == 0.0 {
                continue;
            }
            let src_row = y_taps.start[dst_row] + tap;
            let input = &horizontal[src_row * out_row_len..(src_row + 1) * out_row_len];
            for (acc, &value) in accumulator.iter_mut().zip(input) {
                *acc += weight * value;
            }
        }
        emit_row(dst_row, &accumulator);
    }
}

/// Box-filters one line of interleaved RGB samples: output pixel `i` is the mean
/// of input pixels `i - radius ..= i + radius`, indices beyond the ends reading
/// the end pixels. `input` and `output` hold the same number of pixels.
pub(crate) fn box_line(input: &[f32], radius: usize, output: &mut [f32]) {
    let len = input.len() / 3;
    if len == 0 {
        return;
    }
    let last = len as isize - 1;
    let r = radius as isize;
    let norm = 1.0 / (2 * radius + 1) as f32;
    for channel in 0..3 {
        let sample = |i: isize| input[i.clamp(0, last) as usize * 3 + channel];
        let mut sum: f32 = (-r..=r).map(sample).sum();
        for i in 0..len {
            output[i * 3 + channel] = sum * norm;
            let i = i as isize;
            sum += sample(i + r + 1) - sample(i - r);
        }
    }
}

/// Rounds a sample to the nearest `u8`, saturating.
#[inline]
pub(crate) fn to_u8(value: f32) -> u8 {
    (value + 0.5).clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights_of(taps: &AxisTaps, dst: usize) -> Vec<(usize, f32)> {
        (0..taps.taps)
            .map(|t| (taps.start[dst] + t, taps.weights[dst * taps.taps + t]))
            .filter(|&(_, w)| w != 0.0)
            .collect()
    }

    #[test]
    fn bilinear_taps_use_half_pixel_centres_and_clamp_at_edges() {
        // 2 → 4: positions -0.25 (clamped), 0.25, 0.75, 1.25 (clamped).
        let taps = AxisTaps::bilinear(2, 4, 0.5);
        assert_eq!(weights_of(&taps, 0), vec![(0, 1.0)]);
        assert_eq!(weights_of(&taps, 1), vec![(0, 0.75), (1, 0.25)]);
        assert_eq!(weights_of(&taps, 2), vec![(0, 0.25), (1, 0.75)]);
        assert_eq!(weights_of(&taps, 3), vec![(1, 1.0)]);
    }

    #[test]
    fn area_taps_weight_partial_coverage() {
        // 7 → 2 (scale 3.5): [0, 3.5) and [3.5, 7).
        let taps = AxisTaps::area(7, 2);
        let w = 1.0 / 3.5;
        let first = weights_of(&taps, 0);
        let expected = [(0, w), (1, w), (2, w), (3, 0.5 * w)];
        assert_eq!(first.len(), expected.len());
        for ((index, weight), (e_index, e_weight)) in first.iter().zip(expected) {
            assert_eq!(*index, e_index);
            assert!((weight - e_weight as f32).abs() < 1e-6);
        }
        let second: Vec<usize> = weights_of(&taps, 1).iter().map(|&(i, _)| i).collect();
        assert_eq!(second, vec![3, 4, 5, 6]);
    }

    #[test]
    fn box_line_averages_with_replicated_ends() {
        let input: Vec<f32> = [0.0f32, 3.0, 6.0, 30.0]
            .iter()
            .flat_map(|&v| [v, v + 1.0, 2.0 * v])
            .collect();
        let mut output = vec![0f32; input.len()];
        box_line(&input, 1, &mut output);
        // Means of (0,0,3), (0,3,6), (3,6,30), (6,30,30) in the first channel.
        let first: Vec<f32> = output.chunks_exact(3).map(|p| p[0]).collect();
        assert_eq!(first, vec![1.0, 3.0, 13.0, 22.0]);
        assert_eq!(output[1], 2.0);
        assert_eq!(output[11], 44.0);
        box_line(&input, 0, &mut output);
        assert_eq!(output, input);
    }

    #[test]
    fn every_table_sums_to_one_and_stays_inside_the_input() {
        for (src, dst) in [
            (1, 1),
            (1, 5),
            (5, 1),
            (3, 7),
            (7, 3),
            (1920, 256),
            (144, 1080),
            (255, 128),
            (9, 4),
        ] {
            let taps = AxisTaps::for_resize(src, dst);
            assert_eq!(taps.start.len(), dst);
            for i in 0..dst {
                assert!(
                    taps.start[i] + taps.taps <= src,
                    "{src}->{dst}: tap {i} reads past the input"
                );
                let sum: f32 = taps.weights[i * taps.taps..(i + 1) * taps.taps]
                    .iter()
                    .sum();
                assert!(
                    (sum - 1.0).abs() < 1e-5,
                    "{src}->{dst}: weights of {i} sum to {sum}"
                );
            }
        }
    }
}
