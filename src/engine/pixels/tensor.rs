// SPDX-License-Identifier: MPL-2.0
//! Conversions between packed RGB pixels and the model's float tensors, with
//! the official normalisations: `(v/255 − 0.5)/0.5` into the VAE, and
//! `clamp(x/2 + 0.5, 0, 1)` then `round(·255)` out of it.

use super::RgbImage;
use crate::engine::error::{EngineError, Result};

/// The official pixel normalisation of a u8 value: `(v/255 − 0.5)/0.5`.
pub fn unit_from_u8(v: u8) -> f32 {
    (v as f32 / 255.0 - 0.5) / 0.5
}

/// The official output conversion of a decoded value: `clamp(x/2 + 0.5, 0, 1)`.
pub fn image_from_decoded(x: f32) -> f32 {
    (x / 2.0 + 0.5).clamp(0.0, 1.0)
}

/// Packed RGB → `[3,H,W]` floats in [-1,1] (the official normalisation).
pub fn chw_from_rgb(rgb: &RgbImage, out: &mut [f32]) -> Result<()> {
    let plane = rgb.width as usize * rgb.height as usize;
    if out.len() != 3 * plane || rgb.data.len() != 3 * plane {
        return Err(EngineError::InvalidInput(format!(
            "a {}×{} image does not fit a buffer of {} values",
            rgb.width,
            rgb.height,
            out.len()
        )));
    }
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (k, px) in rgb.data.chunks_exact(3).enumerate() {
        r[k] = unit_from_u8(px[0]);
        g[k] = unit_from_u8(px[1]);
        b[k] = unit_from_u8(px[2]);
    }
    Ok(())
}

/// `[3,C,C]` floats in [0,1] → a packed RGB canvas, rounded as the official
/// `numpy_to_pil` does.
pub fn rgb_from_chw(image: &[f32], canvas: u32) -> RgbImage {
    let plane = canvas as usize * canvas as usize;
    let mut data = vec![0u8; 3 * plane];
    for (k, px) in data.chunks_exact_mut(3).enumerate() {
        for c in 0..3 {
            px[c] = (image[c * plane + k] * 255.0).round().clamp(0.0, 255.0) as u8;
        }
    }
    RgbImage {
        width: canvas,
        height: canvas,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_normalisation_matches_the_official_formula() {
        assert_eq!(unit_from_u8(0), -1.0);
        assert_eq!(unit_from_u8(255), 1.0);
        assert!((unit_from_u8(128) - 0.003_921_628).abs() < 1e-7);
        assert_eq!(image_from_decoded(-3.0), 0.0);
        assert_eq!(image_from_decoded(0.5), 0.75);
        assert_eq!(image_from_decoded(2.0), 1.0);
    }

    #[test]
    fn pixels_convert_to_and_from_the_model_layout() {
        let rgb = RgbImage {
            width: 2,
            height: 1,
            data: vec![0, 128, 255, 10, 20, 30],
        };
        let mut chw = vec![0.0; 6];
        chw_from_rgb(&rgb, &mut chw).unwrap();
        assert_eq!(chw[0], -1.0); // R of pixel 0
        assert_eq!(chw[1], unit_from_u8(10)); // R of pixel 1
        assert_eq!(chw[4], 1.0); // B of pixel 0
        let unit: Vec<f32> = chw.iter().map(|&v| v / 2.0 + 0.5).collect();
        // Pixel 0's R, G and B planes.
        let back = rgb_from_chw(&[unit[0], unit[2], unit[4]], 1);
        assert_eq!(back.data, vec![0, 128, 255]);
        assert!(chw_from_rgb(&rgb, &mut [0.0; 5]).is_err());
    }
}
