// SPDX-License-Identifier: MPL-2.0
//! Scheduler unit tests: timestep lists from diffusers' definitions, exactness
//! of each solver when the noise prediction is the true noise, and the error
//! paths. The conformance `scheduler-*` cases check the numbers against the
//! recorded reference.

use serde_json::json;

use super::*;

/// A deterministic pseudo-random vector in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max)
}

#[test]
fn names_round_trip_and_unknown_names_fail() {
    for kind in SchedulerKind::ALL {
        assert_eq!(SchedulerKind::from_name(kind.name()).unwrap(), kind);
    }
    assert_eq!(
        SchedulerKind::from_name(" DPMSolver++ ").unwrap(),
        SchedulerKind::DpmSolverPp
    );
    let err = SchedulerKind::from_name("euler").unwrap_err().to_string();
    assert!(err.contains("euler"), "{err}");
}

#[test]
fn pndm_leading_timesteps_repeat_the_second_entry() {
    // leading spacing: 1 + 40 k for 25 steps; PLMS list repeats 921.
    let s = Scheduler::new(SchedulerKind::Pndm, 25).unwrap();
    let mut want: Vec<i64> = (0..25).rev().map(|k| 1 + 40 * k).collect();
    want.insert(1, 921);
    assert_eq!(s.timesteps(), want.as_slice());
    let (noise_t, run) = s.run_timesteps();
    assert_eq!(noise_t, 921);
    assert_eq!(run, want[1..].to_vec());
    assert_eq!(run.len(), 25);
}

#[test]
fn ddim_leading_timesteps_and_official_run() {
    let s = Scheduler::new(SchedulerKind::Ddim, 50).unwrap();
    let want: Vec<i64> = (0..50).rev().map(|k| 1 + 20 * k).collect();
    assert_eq!(s.timesteps(), want.as_slice());
    let (noise_t, run) = s.run_timesteps();
    assert_eq!(noise_t, 981);
    assert_eq!(run, want[1..].to_vec());
}

#[test]
fn dpm_linspace_rounds_half_to_even() {
    // numpy: linspace(0, 999, 7) = 0, 166.5, 333, 499.5, 666, 832.5, 999;
    // round() is half-to-even; reversed, the 0 dropped.
    let s = Scheduler::new(SchedulerKind::DpmSolverPp, 6).unwrap();
    assert_eq!(s.timesteps(), &[999, 832, 666, 500, 333, 166]);
}

#[test]
fn linspace_matches_numpy_edge_rules() {
    assert_eq!(linspace_like_numpy(3.0, 9.0, 1), vec![3.0]);
    assert!(linspace_like_numpy(0.0, 1.0, 0).is_empty());
    let v = linspace_like_numpy(0.1, 0.7, 7);
    assert_eq!(v[0], 0.1);
    assert_eq!(v[6], 0.7);
    assert_eq!(linspace_like_numpy(5.0, 5.0, 4), vec![5.0; 4]);
}

#[test]
fn add_noise_mixes_with_the_alpha_product() {
    let s = Scheduler::new(SchedulerKind::Ddim, 10).unwrap();
    let x0 = vec![1.0f32, -2.0];
    let noise = vec![0.5f32, 0.25];
    let t = 501;
    let a = s.alphas_cumprod[t as usize];
    let got = s.add_noise(&x0, &noise, t).unwrap();
    for i in 0..2 {
        let want = a.sqrt() * x0[i] as f64 + (1.0 - a).sqrt() * noise[i] as f64;
        assert!((got[i] as f64 - want).abs() < 1e-6);
    }
    // The SD 1.5 schedule (a float32 table): the alpha product falls from
    // 1 - 0.00085 to ~0.0047.
    assert_eq!(
        s.alphas_cumprod[0],
        (1.0f32 - 0.00085f32.sqrt() * 0.00085f32.sqrt()) as f64
    );
    assert!(s.alphas_cumprod[999] > 0.004 && s.alphas_cumprod[999] < 0.0055);
}

/// Runs `kind` over `timesteps` from the exact noisy sample, feeding the true
/// noise as the prediction; returns the final sample.
fn run_with_true_noise(
    kind: SchedulerKind,
    steps: usize,
    from_full_list: bool,
) -> (Scheduler, Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut s = Scheduler::new(kind, steps).unwrap();
    let (x0, noise) = (values(64, 1), values(64, 2));
    let (start, run) = if from_full_list {
        (s.timesteps()[0], s.timesteps().to_vec())
    } else {
        let (t, run) = s.run_timesteps();
        (t, run)
    };
    let mut x = s.add_noise(&x0, &noise, start).unwrap();
    for &t in &run {
        x = s.step(&noise, t, &x).unwrap();
    }
    (s, x0, noise, x)
}

#[test]
fn every_solver_is_exact_when_the_prediction_is_the_true_noise() {
    // DDIM, PLMS (weights sum to one) and DPM-Solver++ (data prediction exact)
    // all land on sqrt(a) x0 + sqrt(1-a) n at the end of the chain: a = a[0].
    for (kind, steps) in [
        (SchedulerKind::Ddim, 25),
        (SchedulerKind::Pndm, 25),
        (SchedulerKind::Pndm, 7),
        (SchedulerKind::DpmSolverPp, 25),
        (SchedulerKind::DpmSolverPp, 8),
    ] {
        let (s, x0, noise, x) = run_with_true_noise(kind, steps, true);
        let a = s.alphas_cumprod[0];
        let want: Vec<f32> = x0
            .iter()
            .zip(&noise)
            .map(|(&p, &n)| (a.sqrt() * p as f64 + (1.0 - a).sqrt() * n as f64) as f32)
            .collect();
        let err = max_diff(&x, &want);
        assert!(err < 1e-5, "{kind} {steps} steps: {err}");
    }
}

#[test]
fn official_runs_skip_the_first_timestep() {
    // The official loop skips timesteps[0]: PNDM noises at timesteps[1] and
    // its warm-up's second call treats that sample as one stride higher, DDIM
    // noises at timesteps[0] and first steps at timesteps[1]. Neither lands on
    // the exact trajectory, unlike the plain diffusers loop.
    for kind in [SchedulerKind::Pndm, SchedulerKind::Ddim] {
        let (_, _, _, official) = run_with_true_noise(kind, 25, false);
        let (_, _, _, exact) = run_with_true_noise(kind, 25, true);
        assert!(max_diff(&official, &exact) > 1e-3, "{kind}");
    }
}

#[test]
fn reset_makes_a_second_run_identical() {
    for kind in SchedulerKind::ALL {
        let mut s = Scheduler::new(kind, 12).unwrap();
        let (t0, run) = s.run_timesteps();
        let mut results = Vec::new();
        for _ in 0..2 {
            s.reset();
            let mut x = s.add_noise(&values(32, 3), &values(32, 4), t0).unwrap();
            for (i, &t) in run.iter().enumerate() {
                s.step_in_place(&values(32, 10 + i as u64), t, &mut x)
                    .unwrap();
            }
            results.push(x);
        }
        assert_eq!(results[0], results[1], "{kind}");
    }
}

#[test]
fn manifest_config_keeps_each_kinds_defaults() {
    let manifest = json!({"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1});
    for kind in SchedulerKind::ALL {
        assert_eq!(
            SchedulerConfig::from_json(kind, &manifest).unwrap(),
            SchedulerConfig::sd15(kind)
        );
    }
    let dpm = json!({"lambda_min_clipped": "-inf", "solver_type": "heun", "solver_order": 1});
    let c = SchedulerConfig::from_json(SchedulerKind::DpmSolverPp, &dpm).unwrap();
    assert_eq!((c.solver_type, c.solver_order), (SolverType::Heun, 1));
}

#[test]
fn unsupported_settings_are_errors_that_name_the_key() {
    for (kind, config) in [
        (SchedulerKind::Pndm, json!({"skip_prk_steps": false})),
        (
            SchedulerKind::Ddim,
            json!({"prediction_type": "v_prediction"}),
        ),
        (SchedulerKind::DpmSolverPp, json!({"solver_order": 3})),
        (
            SchedulerKind::DpmSolverPp,
            json!({"algorithm_type": "sde-dpmsolver++"}),
        ),
        (SchedulerKind::Ddim, json!({"timestep_spacing": "sideways"})),
        (SchedulerKind::Ddim, json!({"thresholding": true})),
    ] {
        let key = config.as_object().unwrap().keys().next().unwrap().clone();
        let err = Scheduler::from_json(kind, 10, &config)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&key), "{err}");
    }
    assert!(SchedulerConfig::from_json(SchedulerKind::Ddim, &json!([1, 2])).is_err());
}

#[test]
fn bad_calls_are_errors_not_panics() {
    assert!(Scheduler::new(SchedulerKind::Pndm, 0).is_err());
    assert!(Scheduler::new(SchedulerKind::Ddim, 1001).is_err());
    let mut s = Scheduler::new(SchedulerKind::Ddim, 10).unwrap();
    assert!(s.step(&[0.0; 3], 901, &[0.0; 4]).is_err());
    assert!(s.add_noise(&[0.0; 4], &[0.0; 3], 901).is_err());
    assert!(s.add_noise(&[0.0; 4], &[0.0; 4], 1000).is_err());
    assert!(s.add_noise(&[0.0; 4], &[0.0; 4], -1).is_err());
    assert!(s.step(&[0.0; 4], 5000, &[0.0; 4]).is_err());
}

#[test]
fn one_step_runs_degenerate_but_valid() {
    for kind in SchedulerKind::ALL {
        let s = Scheduler::new(kind, 1).unwrap();
        let (t, run) = s.run_timesteps();
        assert!(s.timesteps().contains(&t));
        assert!(run.len() <= 1, "{kind}: {run:?}");
    }
}
