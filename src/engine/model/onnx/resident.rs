// SPDX-License-Identifier: MPL-2.0
//! A run of windows whose whole denoising loop stays in the session's memory
//! (a GPU's): every guidance item in one bound U-Net call, then a small step
//! graph, built here with ort's model editor, that does the guidance formula
//! and the scheduler step as one map per window and writes the next U-Net
//! input in place:
//!
//! ```text
//! rows  = Concat(state [W,K,L], Reshape(Cast(predictions), [W,P,L]), axis 1)
//! next_state  = ReduceSum(Unsqueeze(map [W,K,K+P], 3) * Unsqueeze(rows, 1), axis 2)
//! latents     = Reshape(Slice(next_state, row 0), [W,4,16,h,w])
//! next_sample = Concat(Cast(latents expanded to the W·P items), conditions, axis 1)
//! ```
//!
//! (`K` state rows per window: the latents and the scheduler's memory slots;
//! `P` guidance items.) Multiply-and-sum rather than MatMul: CUDA runs MatMul
//! in TF32 by default, too coarse for scheduler coefficients. The state is
//! f32 whatever the U-Net's type; two state buffers take turns as input and
//! output. Each step copies in only the timestep and the map; only the final
//! latents come back.

use std::sync::Arc;

use ort::editor::{Graph as EditorGraph, Model as EditorModel, Node, ONNX_DOMAIN, Opset};
use ort::memory::Allocator;
use ort::operator::Attribute;
use ort::session::{IoBinding, RunOptions, Session};
use ort::value::{Outlet, Shape, SymbolicDimensions, Tensor, TensorElementType, ValueType};

use super::OrtBackend;
use super::binding::{
    Float, Key, Pooled, UnetInputs, allocators, bound_float, copy_in, run_tracked,
};
use crate::engine::cancel::Cancel;
use crate::engine::error::{EngineError, Result};
use crate::engine::manifest::Graph;
use crate::engine::model::{ResidentConstants, ResidentUnet};
use crate::engine::runtime;

/// Latent channels and U-Net input channels of an item.
const LATENT_CHANNELS: usize = 4;
const UNET_CHANNELS: usize = 9;
const FRAMES: usize = 16;

/// The device buffers, bindings and step session of one shape of run.
struct Buffers<F: Float> {
    unet_binding: IoBinding,
    step_session: Session,
    /// Binding `i` reads state `i` and writes state `1 - i`.
    step_bindings: [IoBinding; 2],
    inputs: UnetInputs<F>,
    conditions: Tensor<F>,
    states: [Tensor<f32>; 2],
    map: Tensor<f32>,
    latents: Tensor<f32>,
    host_latents: Tensor<f32>,
    unet_options: Arc<RunOptions>,
    step_options: Arc<RunOptions>,
}

// SAFETY: as for the bound U-Net's buffers (`binding.rs`): bindings and the
// step session are used by one owner at a time.
unsafe impl<F: Float> Send for Buffers<F> {}

/// A resident run.
struct Resident<'b, F: Float> {
    pooled: Pooled<'b, Buffers<F>>,
    /// The state buffer holding the current rows.
    current: usize,
    steps: usize,
    bytes: u64,
}

/// The resident run of `constants`, or `None` where the U-Net's inputs are
/// not a set the bound call takes (`bound_float`).
pub(super) fn bind<'b>(
    backend: &'b OrtBackend,
    constants: &ResidentConstants<'_>,
) -> Result<Option<Box<dyn ResidentUnet + 'b>>> {
    Ok(match bound_float(backend) {
        Some(false) => Some(Box::new(Resident::<f32>::new(backend, constants, false)?)),
        Some(true) => Some(Box::new(Resident::<half::f16>::new(
            backend, constants, true,
        )?)),
        None => None,
    })
}

impl<'b, F: Float> Resident<'b, F> {
    fn new(backend: &'b OrtBackend, c: &ResidentConstants<'_>, half: bool) -> Result<Self> {
        let key = Key {
            half,
            batch: c.unet.batch,
            latent: c.unet.latent,
            tokens_dim: c.unet.tokens_dim,
            windows: c.windows,
            rows: c.rows,
        };
        let err = |e: ort::Error| backend.run_err(Graph::Unet, e);
        let mut pooled = Pooled::take(backend, key, || Buffers::<F>::new(backend, key))?;
        let buffers = pooled.buffers();
        let (h, w) = c.unet.latent;
        let plane = FRAMES * h * w;
        let item_len = UNET_CHANNELS * plane;
        let conditions: Vec<f32> = c
            .unet
            .sample
            .chunks_exact(item_len)
            .flat_map(|item| &item[LATENT_CHANNELS * plane..])
            .copied()
            .collect();
        let mut bytes = 0;
        bytes += buffers.inputs.copy_window(&c.unet).map_err(err)?;
        bytes += copy_in(&mut buffers.conditions, &conditions, 0).map_err(err)?;
        bytes += copy_in(&mut buffers.states[0], c.state, 0).map_err(err)?;
        Ok(Resident {
            pooled,
            current: 0,
            steps: 0,
            bytes,
        })
    }
}

impl<F: Float> Buffers<F> {
    fn new(backend: &OrtBackend, key: Key) -> Result<Self> {
        let err = |e: ort::Error| backend.run_err(Graph::Unet, e);
        let Key {
            batch,
            latent: (h, w),
            windows,
            rows,
            ..
        } = key;
        let items = batch / windows;
        let latent_len = LATENT_CHANNELS * FRAMES * h * w;
        let step_session = runtime::open_built_session(
            step_graph(&key).map_err(|e| {
                EngineError::Runtime(format!("cannot build the denoising step graph: {e}"))
            })?,
            &backend.config,
            backend.provider,
            "the denoising step graph",
        )?;
        let unet = backend.session(Graph::Unet)?;
        let (device, host) = allocators(backend, &unet).map_err(err)?;
        let new = |dims: &[usize]| Tensor::<F>::new(&device, dims.to_vec());
        let new_f32 = |dims: &[usize]| Tensor::<f32>::new(&device, dims.to_vec());
        let build = || -> ort::Result<Self> {
            let mut unet_binding = unet.create_binding()?;
            let mut inputs = UnetInputs::bound(&device, &mut unet_binding, &key)?;
            let mut predictions = new(&[batch, LATENT_CHANNELS, FRAMES, h, w])?;
            let conditions = new(&[batch, UNET_CHANNELS - LATENT_CHANNELS, FRAMES, h, w])?;
            let mut states = [
                new_f32(&[windows, rows, latent_len])?,
                new_f32(&[windows, rows, latent_len])?,
            ];
            let map = new_f32(&[windows, rows, rows + items])?;
            let latents_shape = [windows, LATENT_CHANNELS, FRAMES, h, w];
            let mut latents = new_f32(&latents_shape)?;
            unet_binding.bind_output(Graph::Unet.contract().1[0], &mut predictions)?;
            let [first, second] = &mut states;
            let step_binding = |from: &Tensor<f32>,
                                to: &mut Tensor<f32>,
                                next_sample: &mut Tensor<F>,
                                latents: &mut Tensor<f32>|
             -> ort::Result<IoBinding> {
                let mut binding = step_session.create_binding()?;
                binding.bind_input("state", from)?;
                binding.bind_input("predictions", &predictions)?;
                binding.bind_input("map", &map)?;
                binding.bind_input("conditions", &conditions)?;
                binding.bind_output("next_state", to)?;
                binding.bind_output("next_sample", next_sample)?;
                binding.bind_output("latents", latents)?;
                Ok(binding)
            };
            let step_bindings = [
                step_binding(first, second, &mut inputs.sample, &mut latents)?,
                step_binding(second, first, &mut inputs.sample, &mut latents)?,
            ];
            Ok(Buffers {
                unet_binding,
                step_session,
                step_bindings,
                inputs,
                conditions,
                states,
                map,
                host_latents: Tensor::<f32>::new(&host, latents_shape)?,
                latents,
                unet_options: backend.unet_buffers.run_options()?,
                step_options: Arc::new(RunOptions::new()?),
            })
        };
        build().map_err(err)
    }
}

/// The step graph of `key`'s shapes (see the module notes).
fn step_graph(key: &Key) -> ort::Result<EditorModel> {
    let (windows, rows, batch) = (key.windows, key.rows, key.batch);
    let items = batch / windows;
    let (h, w) = key.latent;
    let latent_len = LATENT_CHANNELS * FRAMES * h * w;
    let float = if key.half {
        TensorElementType::Float16
    } else {
        TensorElementType::Float32
    };
    let outlet = |name: &str, ty: TensorElementType, dims: &[usize]| {
        Outlet::new(
            name,
            ValueType::Tensor {
                ty,
                shape: Shape::new(dims.iter().map(|&d| d as i64)),
                dimension_symbols: SymbolicDimensions::empty(dims.len()),
            },
        )
    };
    let f32_ty = TensorElementType::Float32;
    let mut graph = EditorGraph::new()?;
    graph.set_inputs([
        outlet("state", f32_ty, &[windows, rows, latent_len]),
        outlet(
            "predictions",
            float,
            &[batch, LATENT_CHANNELS, FRAMES, h, w],
        ),
        outlet("map", f32_ty, &[windows, rows, rows + items]),
        outlet(
            "conditions",
            float,
            &[batch, UNET_CHANNELS - LATENT_CHANNELS, FRAMES, h, w],
        ),
    ])?;
    graph.set_outputs([
        outlet("next_state", f32_ty, &[windows, rows, latent_len]),
        outlet("next_sample", float, &[batch, UNET_CHANNELS, FRAMES, h, w]),
        outlet("latents", f32_ty, &[windows, LATENT_CHANNELS, FRAMES, h, w]),
    ])?;
    let constants: [(&str, Vec<usize>); 8] = [
        ("predictions_by_window", vec![windows, items, latent_len]),
        ("axis_1", vec![1]),
        ("axis_2", vec![2]),
        ("axis_3", vec![3]),
        ("zero", vec![0]),
        (
            "latents_shape",
            vec![windows, LATENT_CHANNELS, FRAMES, h, w],
        ),
        (
            "per_item",
            vec![windows, items, LATENT_CHANNELS, FRAMES, h, w],
        ),
        ("items_shape", vec![batch, LATENT_CHANNELS, FRAMES, h, w]),
    ];
    for (name, values) in constants {
        let mut tensor = Tensor::<i64>::new(&Allocator::default(), [values.len()])?;
        let (_, data) = tensor.extract_tensor_mut();
        for (d, &v) in data.iter_mut().zip(&values) {
            *d = v as i64;
        }
        graph.add_initializer(name, tensor, false)?;
    }
    let to = |ty: TensorElementType| -> ort::Result<Attribute> {
        Attribute::new("to", onnx_element_type(ty))
    };
    let node = |op: &str, inputs: &[&str], output: &str, attributes: Vec<Attribute>| {
        Node::new(op, ONNX_DOMAIN, output, inputs, [output], attributes)
    };
    let windowed_latents: [&str; 2] = ["windowed_latents", "per_window_latents"];
    let nodes = [
        node(
            "Cast",
            &["predictions"],
            "predictions_f32",
            vec![to(f32_ty)?],
        )?,
        node(
            "Reshape",
            &["predictions_f32", "predictions_by_window"],
            "predictions_rows",
            vec![],
        )?,
        node(
            "Concat",
            &["state", "predictions_rows"],
            "rows",
            vec![Attribute::new("axis", 1i64)?],
        )?,
        node("Unsqueeze", &["rows", "axis_1"], "rows_4d", vec![])?,
        node("Unsqueeze", &["map", "axis_3"], "map_4d", vec![])?,
        node("Mul", &["map_4d", "rows_4d"], "terms", vec![])?,
        node(
            "ReduceSum",
            &["terms", "axis_2"],
            "next_state",
            vec![Attribute::new("keepdims", 0i64)?],
        )?,
        node(
            "Gather",
            &["next_state", "zero"],
            windowed_latents[0],
            vec![Attribute::new("axis", 1i64)?],
        )?,
        node(
            "Reshape",
            &[windowed_latents[0], "latents_shape"],
            "latents",
            vec![],
        )?,
        node(
            "Unsqueeze",
            &["latents", "axis_1"],
            windowed_latents[1],
            vec![],
        )?,
        node(
            "Expand",
            &[windowed_latents[1], "per_item"],
            "item_latents_6d",
            vec![],
        )?,
        node(
            "Reshape",
            &["item_latents_6d", "items_shape"],
            "item_latents",
            vec![],
        )?,
        node(
            "Cast",
            &["item_latents"],
            "item_latents_typed",
            vec![to(float)?],
        )?,
        node(
            "Concat",
            &["item_latents_typed", "conditions"],
            "next_sample",
            vec![Attribute::new("axis", 1i64)?],
        )?,
    ];
    for n in nodes {
        graph.add_node(n)?;
    }
    let mut model = EditorModel::new([Opset::new(ONNX_DOMAIN, 17)?])?;
    model.set_graph(graph)?;
    Ok(model)
}

/// ONNX's number for a tensor element type (the `to` of a Cast).
fn onnx_element_type(ty: TensorElementType) -> i64 {
    match ty {
        TensorElementType::Float16 => 10,
        _ => 1,
    }
}

impl<F: Float> ResidentUnet for Resident<'_, F> {
    fn step(&mut self, timestep: i64, maps: &[f32], cancel: &Cancel) -> Result<()> {
        let (backend, key) = (self.pooled.backend, self.pooled.key);
        let err = |e: ort::Error| backend.run_err(Graph::Unet, e);
        let buffers = self.pooled.buffers();
        let map_len = key.windows * key.rows * (key.rows + key.batch / key.windows);
        if maps.len() != map_len {
            return Err(EngineError::InvalidInput(format!(
                "the step map of a resident run has {map_len} values, not {}",
                maps.len()
            )));
        }
        self.bytes +=
            copy_in(&mut buffers.inputs.timestep, &vec![timestep; key.batch], 0).map_err(err)?;
        self.bytes += copy_in(&mut buffers.map, maps, 0).map_err(err)?;
        run_tracked(
            &mut *backend.session(Graph::Unet)?,
            &buffers.unet_binding,
            &buffers.unet_options,
            cancel,
            err,
        )?;
        run_tracked(
            &mut buffers.step_session,
            &buffers.step_bindings[self.current],
            &buffers.step_options,
            cancel,
            |e| EngineError::Inference(format!("the denoising step graph failed at run time: {e}")),
        )?;
        self.current = 1 - self.current;
        self.steps += 1;
        Ok(())
    }

    fn latents(&mut self, out: &mut Vec<f32>) -> Result<()> {
        if self.steps == 0 {
            return Err(EngineError::InvalidInput(
                "a resident run has no latents before its first step".into(),
            ));
        }
        let backend = self.pooled.backend;
        let buffers = self.pooled.buffers();
        buffers
            .latents
            .copy_into(&mut buffers.host_latents)
            .map_err(|e| backend.run_err(Graph::Unet, e))?;
        let (_, values) = buffers.host_latents.extract_tensor();
        self.bytes += std::mem::size_of_val(values) as u64;
        out.clear();
        out.extend_from_slice(values);
        Ok(())
    }

    fn transfer_bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use ort::session::SessionInputValue;

    use super::*;
    use crate::engine::runtime::{Provider, SessionConfig};

    /// Runs the step graph of two windows of two items, 3 rows, 2×2 latents,
    /// on the CPU, in float32 or float16, against the same map computed here.
    fn check_step_graph<F: Float>(half: bool) {
        runtime::environment().expect("ONNX Runtime loads");
        let (windows, items, rows, h, w) = (2, 2, 3, 2, 2);
        let batch = windows * items;
        let key = Key {
            half,
            batch,
            latent: (h, w),
            tokens_dim: (0, 0),
            windows,
            rows,
        };
        let plane = FRAMES * h * w;
        let latent_len = LATENT_CHANNELS * plane;
        let values = |len: usize, seed: usize| -> Vec<f32> {
            (0..len)
                .map(|k| ((k * 37 + seed * 11) % 19) as f32 / 8.0 - 1.0)
                .collect()
        };
        let state = values(windows * rows * latent_len, 1);
        let predictions = values(batch * latent_len, 2);
        let map = values(windows * rows * (rows + items), 3);
        let conditions = values(batch * (UNET_CHANNELS - LATENT_CHANNELS) * plane, 4);
        let typed = |v: &[f32]| -> Vec<F> { v.iter().map(|&x| F::from_f32(x)).collect() };
        let mut session = runtime::open_built_session(
            step_graph(&key).unwrap(),
            &SessionConfig::default(),
            Provider::Cpu,
            "the step graph",
        )
        .unwrap();
        let tensor_f32 = |dims: Vec<usize>, v: &[f32]| -> SessionInputValue<'static> {
            Tensor::from_array((dims, v.to_vec())).unwrap().into()
        };
        let tensor_typed = |dims: Vec<usize>, v: &[f32]| -> SessionInputValue<'static> {
            Tensor::from_array((dims, typed(v))).unwrap().into()
        };
        let outputs = session
            .run(vec![
                ("state", tensor_f32(vec![windows, rows, latent_len], &state)),
                (
                    "predictions",
                    tensor_typed(vec![batch, 4, FRAMES, h, w], &predictions),
                ),
                ("map", tensor_f32(vec![windows, rows, rows + items], &map)),
                (
                    "conditions",
                    tensor_typed(vec![batch, 5, FRAMES, h, w], &conditions),
                ),
            ])
            .unwrap();
        let next_state = outputs["next_state"].try_extract_tensor::<f32>().unwrap().1;
        let next_sample = outputs["next_sample"].try_extract_tensor::<F>().unwrap().1;
        let latents = outputs["latents"].try_extract_tensor::<f32>().unwrap().1;
        // Predictions as the graph reads them: in the U-Net's type.
        let read = |v: f32| F::from_f32(v).to_f32();
        for win in 0..windows {
            for r in 0..rows {
                for i in 0..latent_len {
                    let mut want = 0.0f32;
                    for c in 0..rows + items {
                        let input = if c < rows {
                            state[(win * rows + c) * latent_len + i]
                        } else {
                            read(predictions[(win * items + c - rows) * latent_len + i])
                        };
                        want += map[(win * rows + r) * (rows + items) + c] * input;
                    }
                    let got = next_state[(win * rows + r) * latent_len + i];
                    assert!((got - want).abs() < 1e-5, "window {win} row {r} value {i}");
                }
            }
            let first_row = &next_state[win * rows * latent_len..][..latent_len];
            assert_eq!(&latents[win * latent_len..][..latent_len], first_row);
            for item in 0..items {
                let at = (win * items + item) * UNET_CHANNELS * plane;
                let sample: Vec<f32> = next_sample[at..at + UNET_CHANNELS * plane]
                    .iter()
                    .map(|v| v.to_f32())
                    .collect();
                let want_latents: Vec<f32> = first_row.iter().map(|&v| read(v)).collect();
                assert_eq!(&sample[..latent_len], want_latents.as_slice());
                let cond_at = (win * items + item) * 5 * plane;
                let want_conditions: Vec<f32> = conditions[cond_at..cond_at + 5 * plane]
                    .iter()
                    .map(|&v| read(v))
                    .collect();
                assert_eq!(&sample[latent_len..], want_conditions.as_slice());
            }
        }
    }

    #[test]
    fn the_step_graph_maps_each_windows_rows_and_writes_the_next_unet_input() {
        check_step_graph::<f32>(false);
        // The float16 graph (a float16 U-Net's) reads and writes float16 and keeps its state in float32.
        check_step_graph::<half::f16>(true);
    }
}
