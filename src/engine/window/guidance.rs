// SPDX-License-Identifier: MPL-2.0
//! The guidance batch of a window: which items the U-Net runs for the two
//! guidance scales, and how their predictions combine into one eps (the
//! official formulas, see the notes of `window/mod.rs`).

/// One item of the guidance batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Item {
    /// Unconditional condition, mask 1, context enc(0).
    Uncond,
    /// Masked condition, context enc(0).
    MaskedZeroContext,
    /// Masked condition, context enc(global).
    MaskedGlobalContext,
}

/// The items to run for guidance scale `g` and global guidance scale `gg`.
pub(super) fn guidance_items(g: f32, gg: f32) -> &'static [Item] {
    use Item::*;
    match (g > 1.0, gg > 1.0) {
        (true, true) => &[Uncond, MaskedZeroContext, MaskedGlobalContext],
        (true, false) => &[Uncond, MaskedGlobalContext],
        (false, true) => &[MaskedZeroContext, MaskedGlobalContext],
        (false, false) => &[MaskedGlobalContext],
    }
}

/// eps from the batch's predictions (`part(i)`: item i's `[latent_len]`), written into `eps`.
pub(super) fn combine_predictions<'p>(
    items: &[Item],
    (g, gg): (f32, f32),
    part: impl Fn(usize) -> &'p [f32],
    eps: &mut [f32],
) {
    match items.len() {
        3 => {
            for (((out, &e0), &e1), &e3) in eps.iter_mut().zip(part(0)).zip(part(1)).zip(part(2)) {
                *out = e0 + g * (e1 - e0) + gg * (e3 - e1);
            }
        }
        2 => {
            let scale = if items[0] == Item::Uncond { g } else { gg };
            for ((out, &a), &b) in eps.iter_mut().zip(part(0)).zip(part(1)) {
                *out = a + scale * (b - a);
            }
        }
        _ => eps.copy_from_slice(part(0)),
    }
}

/// The same formula as weights over the predictions: eps = Σ w_i · part(i)
/// (what a device runs, `resident.rs`; the host keeps the official order of
/// operations in `combine_predictions`).
pub(super) fn guidance_weights(items: &[Item], (g, gg): (f32, f32)) -> Vec<f64> {
    let (g, gg) = (g as f64, gg as f64);
    match items.len() {
        3 => vec![1.0 - g, g - gg, gg],
        2 => {
            let scale = if items[0] == Item::Uncond { g } else { gg };
            vec![1.0 - scale, scale]
        }
        _ => vec![1.0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guidance_runs_only_the_items_its_formula_uses() {
        use Item::*;
        assert_eq!(
            guidance_items(2.0, 4.0),
            &[Uncond, MaskedZeroContext, MaskedGlobalContext]
        );
        assert_eq!(guidance_items(2.0, 1.0), &[Uncond, MaskedGlobalContext]);
        assert_eq!(
            guidance_items(1.0, 4.0),
            &[MaskedZeroContext, MaskedGlobalContext]
        );
        assert_eq!(guidance_items(1.0, 1.0), &[MaskedGlobalContext]);
    }

    #[test]
    fn the_weights_are_the_formula() {
        let predictions = [0.5f32, -1.0, 3.0, 2.0, 0.25, -4.0];
        for &(g, gg) in &[(2.0f32, 4.0f32), (2.0, 1.0), (1.0, 4.0), (1.0, 1.0)] {
            let items = guidance_items(g, gg);
            let mut eps = [0.0; 2];
            combine_predictions(items, (g, gg), parts(&predictions), &mut eps);
            let weights = guidance_weights(items, (g, gg));
            for (v, &want) in eps.iter().enumerate() {
                let got: f64 = (0..items.len())
                    .map(|i| weights[i] * predictions[2 * i + v] as f64)
                    .sum();
                assert!(
                    (got - want as f64).abs() < 1e-5,
                    "{g} {gg}: {got} vs {want}"
                );
            }
        }
    }

    /// Item i of predictions laid out one after the other, two values each.
    fn parts<'a>(values: &'a [f32]) -> impl Fn(usize) -> &'a [f32] {
        move |i| &values[2 * i..2 * i + 2]
    }

    #[test]
    fn predictions_combine_by_the_official_formulas() {
        use Item::*;
        // Two values per item: e0 = [1, 0], e1 = [3, 1], e3 = [4, -1]; g = 2, G = 4.
        let mut eps = [0.0; 2];
        combine_predictions(
            &[Uncond, MaskedZeroContext, MaskedGlobalContext],
            (2.0, 4.0),
            parts(&[1., 0., 3., 1., 4., -1.]),
            &mut eps,
        );
        assert_eq!(eps, [9.0, -6.0]); // e0 + 2(e1 - e0) + 4(e3 - e1)
        combine_predictions(
            &[Uncond, MaskedGlobalContext],
            (2.0, 1.0),
            parts(&[1., 0., 4., -1.]),
            &mut eps,
        );
        assert_eq!(eps, [7.0, -2.0]); // e0 + 2(e3 - e0)
        combine_predictions(
            &[MaskedZeroContext, MaskedGlobalContext],
            (1.0, 4.0),
            parts(&[3., 1., 4., -1.]),
            &mut eps,
        );
        assert_eq!(eps, [7.0, -7.0]); // e1 + 4(e3 - e1)
        combine_predictions(
            &[MaskedGlobalContext],
            (1.0, 1.0),
            parts(&[4., -1.]),
            &mut eps,
        );
        assert_eq!(eps, [4.0, -1.0]);
    }
}
