// SPDX-License-Identifier: MPL-2.0
//! The U-Net through ONNX Runtime's IO binding: the sample (whose condition
//! and mask channels never change), the context and the fps of a window are
//! copied into the session's memory (the GPU's, or the host's on the CPU) once,
//! in the graph's element type (float16 graphs: converted once per window);
//! each step copies in only the noisy latents and the timestep, and copies
//! the prediction out. The buffers and their binding are kept from window to
//! window per shape, so that a CUDA graph captured on them (one
//! `gpu_graph_id` per buffer set) replays on the same addresses.
//!
//! Copies go through ort's `copy_into` (an identity session bound to the
//! target's device), the same code on the CPU and on CUDA, so the CPU tests
//! run it. What stays on the host is the scheduler: each step's latents come
//! from it, and its prediction goes back to it.

use std::any::Any;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, RunOptions, Session};
use ort::value::{PrimitiveTensorElementType, Shape, Tensor, TensorRefMut};

use super::OrtBackend;
use crate::engine::cancel::Cancel;
use crate::engine::error::Result;
use crate::engine::manifest::{DType, Graph};
use crate::engine::model::{BoundUnet, UnetConstants};

/// The shape of a buffer set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    half: bool,
    batch: usize,
    latent: (usize, usize),
    tokens_dim: (usize, usize),
}

/// Buffer sets not in use, by shape.
#[derive(Default)]
pub(super) struct BufferPool {
    free: Mutex<Vec<(Key, Box<dyn Any + Send>)>>,
    next_graph_id: AtomicU32,
}

/// The float element types of a U-Net graph.
trait Float: PrimitiveTensorElementType + Copy + std::fmt::Debug + Send + 'static {
    fn from_f32(v: f32) -> Self;
    fn to_f32(self) -> f32;
}

impl Float for f32 {
    fn from_f32(v: f32) -> Self {
        v
    }
    fn to_f32(self) -> f32 {
        self
    }
}

impl Float for half::f16 {
    fn from_f32(v: f32) -> Self {
        half::f16::from_f32(v)
    }
    fn to_f32(self) -> f32 {
        half::f16::to_f32(self)
    }
}

/// A buffer set: the bound tensors in the session's memory, the host tensors
/// the copies go through, and the run options of its CUDA graph.
struct Buffers<F: Float> {
    binding: IoBinding,
    sample: Tensor<F>,
    context: Tensor<F>,
    fps: Tensor<i64>,
    timestep: Tensor<i64>,
    output: Tensor<F>,
    host_output: Tensor<F>,
    /// Its CUDA graph id; terminated by a cancel request, cleared before each run.
    run_options: Arc<RunOptions>,
}

// SAFETY: an `OrtIoBinding` has no thread affinity; a buffer set is used by
// one owner at a time (the pool's mutex or the window that took it out).
unsafe impl<F: Float> Send for Buffers<F> {}

/// The bound U-Net of one window; gives its buffers back to the pool when dropped.
struct Bound<'b, F: Float> {
    backend: &'b OrtBackend,
    key: Key,
    buffers: Option<Buffers<F>>,
    bytes: u64,
}

/// Binds `constants` for the backend's U-Net, or `None` where this path does
/// not apply (timestep or fps not int64, or inputs of mixed float types).
pub(super) fn bind<'b>(
    backend: &'b OrtBackend,
    constants: &UnetConstants<'_>,
) -> Result<Option<Box<dyn BoundUnet + 'b>>> {
    let dtype = |name: &str| backend.graphs[Graph::Unet.index()].input_dtype(name);
    let float = dtype("sample");
    if dtype("context") != float || dtype("timestep") != Some(DType::I64) {
        return Ok(None);
    }
    if dtype("fps") != Some(DType::I64) {
        return Ok(None);
    }
    Ok(match float {
        Some(DType::F32) => Some(Box::new(Bound::<f32>::new(backend, constants, false)?)),
        Some(DType::F16) => Some(Box::new(Bound::<half::f16>::new(backend, constants, true)?)),
        _ => None,
    })
}

impl<'b, F: Float> Bound<'b, F> {
    fn new(backend: &'b OrtBackend, c: &UnetConstants<'_>, half: bool) -> Result<Self> {
        let key = Key {
            half,
            batch: c.batch,
            latent: c.latent,
            tokens_dim: c.tokens_dim,
        };
        let err = |e: ort::Error| backend.run_err(Graph::Unet, e);
        let pooled = {
            let mut free = backend.unet_buffers.free.lock().unwrap();
            let at = free.iter().position(|(k, _)| *k == key);
            at.map(|at| free.swap_remove(at).1)
        };
        let mut buffers = match pooled.and_then(|b| b.downcast::<Buffers<F>>().ok()) {
            Some(buffers) => *buffers,
            None => Buffers::<F>::new(backend, key).map_err(err)?,
        };
        let mut bytes = 0;
        bytes += copy_in(&mut buffers.sample, c.sample, 0).map_err(err)?;
        bytes += copy_in(&mut buffers.context, c.context, 0).map_err(err)?;
        let fps = vec![c.fps; c.batch];
        bytes += copy_in(&mut buffers.fps, &fps, 0).map_err(err)?;
        Ok(Bound {
            backend,
            key,
            buffers: Some(buffers),
            bytes,
        })
    }
}

impl<F: Float> Buffers<F> {
    fn new(backend: &OrtBackend, key: Key) -> ort::Result<Self> {
        let session = backend
            .session(Graph::Unet)
            .map_err(|e| ort::Error::new(e.to_string()))?;
        let device = if backend.provider.on_device() {
            Allocator::new(
                &session,
                MemoryInfo::new(
                    AllocationDevice::CUDA,
                    backend.config.device_id,
                    AllocatorType::Device,
                    MemoryType::Default,
                )?,
            )?
        } else {
            Allocator::default()
        };
        let host = Allocator::default();
        let Key {
            batch,
            latent: (h, w),
            tokens_dim: (tokens, dim),
            ..
        } = key;
        let latents = [batch, 4, 16, h, w];
        let sample = Tensor::<F>::new(&device, [batch, 9, 16, h, w])?;
        let context = Tensor::<F>::new(&device, [batch, tokens, dim])?;
        let fps = Tensor::<i64>::new(&device, [batch])?;
        let timestep = Tensor::<i64>::new(&device, [batch])?;
        let mut output = Tensor::<F>::new(&device, latents)?;
        let mut binding = session.create_binding()?;
        binding.bind_input("sample", &sample)?;
        binding.bind_input("context", &context)?;
        binding.bind_input("fps", &fps)?;
        binding.bind_input("timestep", &timestep)?;
        let output_name = Graph::Unet.contract().1[0];
        binding.bind_output(output_name, &mut output)?;
        let mut run_options = RunOptions::new()?;
        let graph_id = backend
            .unet_buffers
            .next_graph_id
            .fetch_add(1, Ordering::Relaxed);
        run_options.set("gpu_graph_id", graph_id.to_string())?;
        let run_options = Arc::new(run_options);
        Ok(Buffers {
            binding,
            sample,
            context,
            fps,
            timestep,
            output,
            host_output: Tensor::<F>::new(&host, latents)?,
            run_options,
        })
    }
}

/// Copies `values` (converted to the element type) into `target` from element
/// `at` on; returns the bytes copied. The source is an owned host tensor: ort
/// copies through an identity session, and a borrowed source would be cloned
/// through that same session while it is held.
fn copy_in<T, V>(target: &mut Tensor<T>, values: &[V], at: usize) -> ort::Result<u64>
where
    T: PrimitiveTensorElementType + std::fmt::Debug + Copy + 'static,
    V: Copy + Into<Convert<T>>,
{
    let host: Vec<T> = values.iter().map(|&v| v.into().0).collect();
    let bytes = std::mem::size_of_val(host.as_slice()) as u64;
    let source = Tensor::from_array(([host.len()], host))?;
    let info = target.memory_info().to_owned();
    // SAFETY: callers pass `at + values.len()` within `target`'s elements; the
    // view lives only for this copy, while `target` is borrowed.
    unsafe {
        let start = target
            .data_ptr_mut()
            .cast::<u8>()
            .add(at * std::mem::size_of::<T>());
        let view =
            TensorRefMut::<T>::from_raw(info, start.cast(), Shape::new([values.len() as i64]))?;
        source.copy_into(view)?;
    }
    Ok(bytes)
}

/// A host value in a tensor's element type.
struct Convert<T>(T);

impl<F: Float> From<f32> for Convert<F> {
    fn from(v: f32) -> Self {
        Convert(F::from_f32(v))
    }
}

impl From<i64> for Convert<i64> {
    fn from(v: i64) -> Self {
        Convert(v)
    }
}

impl<F: Float> BoundUnet for Bound<'_, F> {
    fn step(
        &mut self,
        latents: &[f32],
        timestep: i64,
        out: &mut Vec<f32>,
        cancel: &Cancel,
    ) -> Result<()> {
        let backend = self.backend;
        let err = |e: ort::Error| backend.run_err(Graph::Unet, e);
        let buffers = self.buffers.as_mut().expect("buffers until drop");
        let Key {
            batch,
            latent: (h, w),
            ..
        } = self.key;
        let latent_len = 4 * 16 * h * w;
        if latents.len() != batch * latent_len {
            return Err(crate::engine::EngineError::InvalidInput(format!(
                "the bound U-Net takes {} latent values, not {}",
                batch * latent_len,
                latents.len()
            )));
        }
        let item_len = 9 * 16 * h * w;
        for (item, values) in latents.chunks_exact(latent_len).enumerate() {
            self.bytes += copy_in(&mut buffers.sample, values, item * item_len).map_err(err)?;
        }
        let timesteps = vec![timestep; batch];
        self.bytes += copy_in(&mut buffers.timestep, &timesteps, 0).map_err(err)?;
        {
            let mut session: std::sync::MutexGuard<'_, Session> = backend.session(Graph::Unet)?;
            buffers.run_options.unterminate().map_err(err)?;
            let _in_flight = cancel.track(buffers.run_options.clone())?;
            session
                .run_binding_with_options(&buffers.binding, &buffers.run_options)
                .map_err(|e| match cancel.check() {
                    Err(cancelled) => cancelled,
                    Ok(()) => err(e),
                })?;
        }
        buffers
            .output
            .copy_into(&mut buffers.host_output)
            .map_err(err)?;
        let (_, values) = buffers.host_output.extract_tensor();
        self.bytes += std::mem::size_of_val(values) as u64;
        out.clear();
        out.extend(values.iter().map(|v| v.to_f32()));
        Ok(())
    }

    fn transfer_bytes(&self) -> u64 {
        self.bytes
    }
}

impl<F: Float> Drop for Bound<'_, F> {
    fn drop(&mut self) {
        if let Some(buffers) = self.buffers.take() {
            let mut free = self.backend.unet_buffers.free.lock().unwrap();
            free.push((self.key, Box::new(buffers)));
        }
    }
}
