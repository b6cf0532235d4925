// SPDX-License-Identifier: MPL-2.0
//! A batch of windows denoised with the whole loop in ONNX Runtime's memory
//! (a GPU's), where the backend can and every guidance item of the batch goes
//! in one U-Net call: at each step the host sends only the timestep and, per
//! window, its scheduler step and guidance formula as one small map
//! (`StepRecipe::linear_map`); only the final latents come back. The maps
//! are computed in f64 and applied in f32, so the result agrees with the
//! host's steps to float rounding, not bit for bit.

use super::guidance::guidance_weights;
use super::{CallShape, Denoiser, FRAMES, LATENT_CHANNELS, UnetCall};
use crate::engine::cancel::Cancel;
use crate::engine::error::{EngineError, Result};
use crate::engine::model::{Model, ResidentConstants, UnetConstants};

impl Denoiser {
    /// Runs the loop of `latents` (one per window, noised, schedulers reset)
    /// on the device; `None` where that does not apply and the host steps.
    pub(super) fn run_resident(
        &mut self,
        model: &Model,
        calls: &[UnetCall],
        &CallShape { latent, fps, dim }: &CallShape,
        latents: &[Vec<f32>],
        cancel: &Cancel,
    ) -> Result<Option<Vec<Vec<f32>>>> {
        let [call] = calls else { return Ok(None) };
        if !self.keep_on_device || self.timesteps.is_empty() || !self.scheduler.is_linear() {
            return Ok(None);
        }
        let (windows, items) = (latents.len(), self.items.len());
        let slots = self.scheduler.memory_slots();
        let rows = 1 + slots;
        let latent_len = LATENT_CHANNELS * FRAMES * latent.0 * latent.1;
        self.fill_latents(latents, latent_len);
        let mut state = vec![0.0f32; windows * rows * latent_len];
        for (rows_of_window, latents) in state.chunks_exact_mut(rows * latent_len).zip(latents) {
            rows_of_window[..latent_len].copy_from_slice(latents);
        }
        let constants = ResidentConstants {
            unet: UnetConstants {
                sample: &self.sample,
                batch: call.n,
                latent,
                fps,
                context: &self.context[..call.n * call.tokens * dim],
                tokens_dim: (call.tokens, dim),
            },
            windows,
            items,
            rows,
            state: &state,
        };
        let Some(mut resident) = model.bind_resident(&constants)? else {
            return Ok(None);
        };
        let weights = guidance_weights(self.items, self.scales);
        let (mut maps, mut map) = (Vec::new(), Vec::new());
        for step in 0..self.timesteps.len() {
            let t = self.timesteps[step];
            cancel.check()?;
            maps.clear();
            for scheduler in &mut self.schedulers {
                scheduler
                    .recipe(t)?
                    .linear_map(slots, &weights, &mut map)
                    .ok_or_else(|| {
                        EngineError::Inference(format!(
                            "the {} step at timestep {t} is not linear",
                            scheduler.kind()
                        ))
                    })?;
                maps.extend_from_slice(&map);
            }
            resident.step(t, &maps, cancel)?;
        }
        let mut out = Vec::new();
        resident.latents(&mut out)?;
        self.transfer_bytes += resident.transfer_bytes();
        Ok(Some(
            out.chunks_exact(latent_len).map(<[f32]>::to_vec).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::{
        DenoiseParams, GuidanceContext, WindowConstants, WindowLatents, window_noise,
    };
    use super::*;
    use crate::engine::runtime::{ExecutionProvider, cuda_unavailable_reason};
    use crate::engine::scheduler::SchedulerKind;
    use crate::engine::test_support::{max_abs_difference, model_options, tiny_model, wave};

    /// Runs two windows (the second with guide frames) in one batch; the
    /// latents and the bytes copied.
    fn run(
        model: &Arc<Model>,
        kind: SchedulerKind,
        steps: u32,
        scales: (f32, f32),
        on_device: bool,
    ) -> (Vec<Vec<f32>>, u64) {
        let canvas = model.canvas() as usize;
        let cancel = Cancel::new();
        let mask: Vec<f32> = (0..canvas * canvas)
            .map(|p| ((p % canvas) < canvas / 4) as u8 as f32)
            .collect();
        let constants = WindowConstants::new(model, canvas, &mask, &cancel).unwrap();
        let side = constants.latent_side();
        let frame_len = LATENT_CHANNELS * side * side;
        let global = wave(FRAMES * frame_len, 9);
        let context = GuidanceContext::from_latents(model, &constants, &global, &cancel).unwrap();
        let frames: Vec<Vec<f32>> = (0..2 * FRAMES).map(|f| wave(frame_len, f)).collect();
        let window = |w: usize| WindowLatents {
            init: std::array::from_fn(|f| frames[w * FRAMES + f].as_slice()),
            condition: std::array::from_fn(|f| {
                frames[(w * FRAMES + f + 1) % (2 * FRAMES)].as_slice()
            }),
            guide: std::array::from_fn(|f| w == 1 && f % 5 == 0),
            uncond: &constants.uncond,
            mask: &constants.mask,
        };
        let params = DenoiseParams {
            steps,
            scheduler: kind,
            guidance_scale: scales.0,
            global_guidance_scale: scales.1,
            seed: 3,
        };
        let mut denoiser = Denoiser::new(Arc::clone(model), &params).unwrap();
        denoiser.set_batching(usize::MAX, 2);
        denoiser.set_keep_on_device(on_device);
        let noise = window_noise(3, canvas as u32);
        let latents = denoiser
            .run_many(
                &[window(0), window(1)],
                &context,
                &noise,
                (side, side),
                8,
                &cancel,
            )
            .unwrap();
        (latents, denoiser.transfer_bytes())
    }

    #[test]
    fn the_loop_on_the_device_gives_the_host_loop_for_every_scheduler() {
        use SchedulerKind::*;
        let cpu = tiny_model();
        let cases = [
            (Pndm, (2.0, 4.0)),
            (Pndm, (2.0, 1.0)),
            (Pndm, (1.0, 1.0)),
            (Ddim, (2.0, 4.0)),
            (DpmSolverPp, (2.0, 4.0)),
        ];
        for (kind, scales) in cases {
            let (host, _) = run(&cpu, kind, 6, scales, false);
            let (device, _) = run(&cpu, kind, 6, scales, true);
            let diff = max_abs_difference(&host, &device);
            let largest = host.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
            eprintln!("{kind} {scales:?}: device vs host {diff:e}, values up to {largest}");
            assert!(
                diff <= 1e-5 * largest.max(1.0),
                "{kind} {scales:?}: {diff} (values up to {largest})"
            );
            assert!(
                host != run(&cpu, kind, 5, scales, true).0,
                "{kind}: the steps change the latents"
            );
        }
    }

    #[test]
    fn on_the_device_a_step_copies_only_its_timestep_and_map() {
        let kind = SchedulerKind::Pndm;
        let cpu = tiny_model();
        let (_, six) = run(&cpu, kind, 6, (2.0, 4.0), true);
        let (_, eight) = run(&cpu, kind, 8, (2.0, 4.0), true);
        // Two windows of three items: six timesteps, and a 6×9 map per window.
        let rows = 1 + 5;
        let per_step = 6 * 8 + 2 * rows * (rows + 3) * 4;
        assert_eq!(eight - six, 2 * per_step as u64);
        let (_, host_six) = run(&cpu, kind, 6, (2.0, 4.0), false);
        let (_, host_eight) = run(&cpu, kind, 8, (2.0, 4.0), false);
        let latent_bytes = 6 * 4 * 16 * 16 * 16 * 4;
        assert!(
            host_eight - host_six >= 2 * 2 * latent_bytes as u64,
            "the host's steps send the latents and take the predictions back: {}",
            host_eight - host_six
        );
    }

    #[test]
    fn the_loop_on_cuda_agrees_with_the_host_loop_on_the_cpu() {
        if let Some(reason) = cuda_unavailable_reason(0) {
            eprintln!("skipped: no CUDA device: {reason}");
            return;
        }
        let cpu = tiny_model();
        let mut options = model_options(ExecutionProvider::Cuda);
        options.session.gpu.cuda_graphs = true;
        let mut models = vec![(
            "float32",
            Model::load(&options).expect("CUDA starts, so the model loads"),
        )];
        match std::env::var_os("M3DDM_TEST_MODEL_FP16") {
            Some(dir) => {
                options.model_dir = dir.into();
                models.push((
                    "float16",
                    Model::load(&options).expect("the float16 model loads on CUDA"),
                ));
            }
            None => eprintln!("float16 skipped: set M3DDM_TEST_MODEL_FP16 to a float16 export"),
        }
        for (precision, cuda) in &models {
            for kind in SchedulerKind::ALL {
                let (host, host_bytes) = run(&cpu, kind, 6, (2.0, 4.0), false);
                // Twice: the second run replays the CUDA graph captured by the first.
                for _ in 0..2 {
                    let (device, bytes) = run(cuda, kind, 6, (2.0, 4.0), true);
                    let diff = max_abs_difference(&host, &device);
                    let limit = if *precision == "float16" { 5e-2 } else { 1e-3 };
                    assert!(diff < limit, "{precision} {kind}: {diff}");
                    assert!(
                        bytes < host_bytes,
                        "{precision} {kind}: {bytes} vs {host_bytes}"
                    );
                }
            }
        }
    }
}
