// SPDX-License-Identifier: MPL-2.0
//! The window's layout helpers, seeded noise and parameter checks.

use super::*;

#[test]
fn frames_scatter_and_gather_in_the_unet_layout() {
    let plane = 2;
    let frames: Vec<Vec<f32>> = (0..FRAMES)
        .map(|f| (0..8).map(|k| (f * 100 + k) as f32).collect())
        .collect();
    let refs: [&[f32]; FRAMES] = std::array::from_fn(|f| frames[f].as_slice());
    let mut tensor = vec![0.0; LATENT_CHANNELS * FRAMES * plane];
    scatter_frames(&mut tensor, &refs, plane);
    // Channel 1 of frame 3 sits at (1*16 + 3) * plane.
    assert_eq!(
        &tensor[(16 + 3) * plane..(16 + 3) * plane + 2],
        &[302.0, 303.0]
    );
    for (f, frame) in frames.iter().enumerate() {
        assert_eq!(&gather_frame(&tensor, f, plane), frame);
    }
}

#[test]
fn noise_is_seeded_standard_normal() {
    let a = window_noise(3, 64);
    assert_eq!(a.len(), 4 * 16 * 8 * 8);
    assert_eq!(a, window_noise(3, 64));
    assert_ne!(a, window_noise(4, 64));
    let mean = a.iter().map(|&v| v as f64).sum::<f64>() / a.len() as f64;
    let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64;
    assert!(
        mean.abs() < 0.1 && (var - 1.0).abs() < 0.1,
        "mean {mean} variance {var}"
    );
}

#[test]
fn params_out_of_range_are_refused() {
    let bad_steps = DenoiseParams {
        steps: limits::MAX_STEPS + 1,
        ..DenoiseParams::default()
    };
    assert!(
        bad_steps
            .validate()
            .unwrap_err()
            .to_string()
            .contains("steps")
    );
    let nan = DenoiseParams {
        guidance_scale: f32::NAN,
        ..DenoiseParams::default()
    };
    assert!(nan.validate().unwrap_err().to_string().contains("finite"));
    assert!(DenoiseParams::default().validate().is_ok());
}
