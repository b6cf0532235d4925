// SPDX-License-Identifier: MPL-2.0
//! The U-Net through IO binding against the plain call, on the CPU (the same
//! binding and copy code as on a GPU, with host memory), and the CUDA, CUDA
//! graph, float16 and TensorRT paths where this machine has them: those tests
//! print why they skip when it does not.

use std::path::Path;
use std::sync::Arc;

use crate::engine::cancel::Cancel;
use crate::engine::error::Result;
use crate::engine::manifest::{DType, Graph};
use crate::engine::model::{Model, UnetConstants};
use crate::engine::runtime::{
    CudnnAlgoSearch, ExecutionProvider, GpuOptions, cuda_unavailable_reason,
};
use crate::engine::test_support::{
    max_abs_difference, model_options, scratch_dir, tiny_model_dir, wave,
};

/// A U-Net batch of the model's canvas: deterministic sample, context, latents of two steps.
struct Case {
    sample: Vec<f32>,
    context: Vec<f32>,
    batch: usize,
    latent: (usize, usize),
    tokens_dim: (usize, usize),
    steps: Vec<(Vec<f32>, i64)>,
}

fn case(model: &Model, batch: usize) -> Case {
    let side = (model.canvas() / 8) as usize;
    let (context, tokens, dim) = model
        .global_context(&wave(16 * 4 * side * side, 1), (side, side), &Cancel::new())
        .unwrap();
    let latent_len = 4 * 16 * side * side;
    Case {
        sample: wave(batch * 9 * 16 * side * side, 2),
        context: context.repeat(batch),
        batch,
        latent: (side, side),
        tokens_dim: (tokens, dim),
        steps: vec![
            (wave(batch * latent_len, 3), 901),
            (wave(batch * latent_len, 4), 451),
        ],
    }
}

/// The predictions of every step of `case`, through the binding if `bound`.
fn predictions(model: &Model, case: &Case, bound: bool) -> (Vec<Vec<f32>>, u64) {
    let constants = UnetConstants {
        sample: &case.sample,
        batch: case.batch,
        latent: case.latent,
        fps: 7,
        context: &case.context,
        tokens_dim: case.tokens_dim,
    };
    let mut outputs = Vec::new();
    if bound {
        let mut call = model
            .bind_unet(&constants)
            .unwrap()
            .expect("the in-process backend binds");
        for (latents, t) in &case.steps {
            let mut out = Vec::new();
            call.step(latents, *t, &mut out, &Cancel::new()).unwrap();
            outputs.push(out);
        }
        return (outputs, call.transfer_bytes());
    }
    let (h, w) = case.latent;
    let (latent_len, item_len) = (4 * 16 * h * w, 9 * 16 * h * w);
    let mut sample = case.sample.clone();
    let mut bytes = 0;
    for (latents, t) in &case.steps {
        for (item, values) in latents.chunks_exact(latent_len).enumerate() {
            sample[item * item_len..item * item_len + latent_len].copy_from_slice(values);
        }
        let mut out = Vec::new();
        model
            .unet(
                &sample,
                case.batch,
                case.latent,
                *t,
                7,
                &case.context,
                case.tokens_dim,
                &mut out,
                &Cancel::new(),
            )
            .unwrap();
        bytes += model.unet_transfer_bytes(case.batch, case.latent, case.tokens_dim);
        outputs.push(out);
    }
    (outputs, bytes)
}

/// The model in `dir` on `provider`, IO binding on unless `gpu` turns it off.
/// The model in `dir` on `provider`, IO binding on unless `gpu` turns it off.
fn load(
    provider: ExecutionProvider,
    dir: &Path,
    gpu: impl FnOnce(&mut GpuOptions),
) -> Result<Arc<Model>> {
    let mut options = model_options(provider);
    options.model_dir = dir.to_owned();
    options.session.gpu.io_binding = true;
    gpu(&mut options.session.gpu);
    Model::load(&options)
}

#[test]
fn the_bound_unet_gives_the_plain_calls_output_and_copies_less() {
    let model = load(ExecutionProvider::Cpu, &tiny_model_dir(), |_| {}).unwrap();
    let case = case(&model, 2);
    let (plain, plain_bytes) = predictions(&model, &case, false);
    let (bound, bound_bytes) = predictions(&model, &case, true);
    assert_eq!(plain.len(), 2);
    assert_eq!(plain, bound, "the same kernels on the same inputs");
    assert_ne!(plain[0], plain[1]);
    // f32 graph, int64 timestep and fps: the constants once, then per step
    // the latents, the timestep and the prediction.
    let (h, w) = case.latent;
    let latents = (case.batch * 4 * 16 * h * w * 4) as u64;
    let constants = (case.sample.len() * 4 + case.context.len() * 4 + case.batch * 8) as u64;
    let per_step = latents + case.batch as u64 * 8 + latents;
    assert_eq!(bound_bytes, constants + 2 * per_step);
    assert!(bound_bytes < plain_bytes, "{bound_bytes} vs {plain_bytes}");
    // A second window reuses the buffer set of the first and still agrees.
    assert_eq!(predictions(&model, &case, true).0, plain);
}

#[test]
fn io_binding_off_calls_the_unet_with_every_input() {
    let model = load(ExecutionProvider::Cpu, &tiny_model_dir(), |gpu| {
        gpu.io_binding = false
    })
    .unwrap();
    let case = case(&model, 1);
    let constants = UnetConstants {
        sample: &case.sample,
        batch: 1,
        latent: case.latent,
        fps: 7,
        context: &case.context,
        tokens_dim: case.tokens_dim,
    };
    assert!(model.bind_unet(&constants).unwrap().is_none());
    let short = UnetConstants {
        sample: &case.sample[1..],
        ..constants
    };
    let err = model.bind_unet(&short).err().unwrap().to_string();
    assert!(err.contains("`sample`"), "{err}");
}

/// The tiny model on CUDA with `gpu`'s options, or why this machine cannot.
fn on_cuda(dir: &Path, gpu: impl FnOnce(&mut GpuOptions)) -> Option<Arc<Model>> {
    if let Some(reason) = cuda_unavailable_reason(0) {
        eprintln!("skipped: no CUDA device: {reason}");
        return None;
    }
    Some(load(ExecutionProvider::Cuda, dir, gpu).expect("CUDA starts, so the model loads on it"))
}

#[test]
fn the_bound_unet_on_cuda_agrees_with_the_cpu() {
    let cpu = load(ExecutionProvider::Cpu, &tiny_model_dir(), |_| {}).unwrap();
    let Some(cuda) = on_cuda(&tiny_model_dir(), |_| {}) else {
        return;
    };
    assert_eq!(cuda.placement().label(), "cuda:0");
    let case = case(&cpu, 2);
    let (reference, _) = predictions(&cpu, &case, false);
    for bound in [false, true] {
        let (got, _) = predictions(&cuda, &case, bound);
        let diff = max_abs_difference(&reference, &got);
        assert!(diff < 1e-3, "bound {bound}: max difference {diff}");
    }
}

#[test]
fn cuda_graphs_replay_the_bound_unet() {
    let cpu = load(ExecutionProvider::Cpu, &tiny_model_dir(), |_| {}).unwrap();
    let Some(cuda) = on_cuda(&tiny_model_dir(), |gpu| {
        gpu.cuda_graphs = true;
        gpu.cudnn_algo_search = CudnnAlgoSearch::Exhaustive;
    }) else {
        return;
    };
    let case = case(&cpu, 2);
    let (reference, _) = predictions(&cpu, &case, false);
    // The first window captures, the next ones replay on the same buffers.
    for window in 0..3 {
        let diff = max_abs_difference(&reference, &predictions(&cuda, &case, true).0);
        assert!(diff < 1e-3, "window {window}: max difference {diff}");
    }
}

#[test]
fn a_float16_model_binds_in_float16_on_cuda() {
    let Some(dir) = std::env::var_os("M3DDM_TEST_MODEL_FP16").map(std::path::PathBuf::from) else {
        eprintln!(
            "skipped: no float16 model: set M3DDM_TEST_MODEL_FP16 to one \
             (python -m m3ddm_export --random-tiny 0 --precision fp16 --out DIR)"
        );
        return;
    };
    let cpu = load(ExecutionProvider::Cpu, &tiny_model_dir(), |_| {}).unwrap();
    let case = case(&cpu, 2);
    let (reference, _) = predictions(&cpu, &case, false);
    // float16 graphs run on CUDA only (the CPU provider refuses them).
    let Some(half) = on_cuda(&dir, |_| {}) else {
        return;
    };
    assert!(
        half.manifest()
            .graph(Graph::Unet)
            .inputs
            .iter()
            .any(|t| t.dtype == DType::F16)
    );
    let (plain, plain_bytes) = predictions(&half, &case, false);
    let (bound, bound_bytes) = predictions(&half, &case, true);
    assert_eq!(plain, bound);
    assert!(bound_bytes < plain_bytes);
    let diff = max_abs_difference(&reference, &bound);
    assert!(
        diff < 5e-2,
        "float16 against float32: max difference {diff}"
    );
}

#[test]
fn tensorrt_runs_or_names_what_is_missing() {
    let cache = scratch_dir("tensorrt-cache");
    let loaded = load(ExecutionProvider::TensorRt, &tiny_model_dir(), |gpu| {
        gpu.tensorrt_cache = Some(cache.clone());
    });
    match loaded {
        Err(err) => {
            let err = err.to_string();
            assert!(err.contains("TensorRT execution provider"), "{err}");
            let named = [
                "not in this ONNX Runtime build",
                "libnvinfer",
                "cannot start on device 0",
            ];
            assert!(named.iter().any(|what| err.contains(what)), "{err}");
            eprintln!("skipped: no TensorRT here: {err}");
        }
        Ok(model) => {
            assert_eq!(model.placement().label(), "tensorrt:0");
            let case = case(&model, 1);
            let (plain, _) = predictions(&model, &case, false);
            assert_eq!(plain.len(), 2);
            let cached = std::fs::read_dir(&cache).unwrap().count();
            assert!(cached > 0, "no engine in {}", cache.display());
        }
    }
}
