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
//! run it. Here the scheduler stays on the host: each step's latents come
//! from it, and its prediction goes back to it; `resident.rs` keeps the
//! whole loop on the device where all items go in one call (on a GPU).

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
pub(super) struct Key {
    pub half: bool,
    pub batch: usize,
    pub latent: (usize, usize),
    pub tokens_dim: (usize, usize),
    /// A resident run's windows and state rows per window (`resident.rs`); 0 here.
    pub windows: usize,
    pub rows: usize,
}

/// Buffer sets not in use, by shape.
#[derive(Default)]
pub(super) struct BufferPool {
    free: Mutex<Vec<(Key, Box<dyn Any + Send>)>>,
    next_graph_id: AtomicU32,
}

impl BufferPool {
    /// A buffer set of `key`'s shape given back earlier, if any.
    pub(super) fn take<T: 'static>(&self, key: Key) -> Option<T> {
        let mut free = self.free.lock().unwrap();
        let at = free.iter().position(|(k, _)| *k == key)?;
        free.swap_remove(at).1.downcast::<T>().ok().map(|b| *b)
    }

    /// Keeps a buffer set for the next window of its shape.
    pub(super) fn give_back<T: Send + 'static>(&self, key: Key, buffers: T) {
        self.free.lock().unwrap().push((key, Box::new(buffers)));
    }

    /// Run options with a CUDA graph id of their own, terminated by a cancel
    /// request and cleared before each run.
    pub(super) fn run_options(&self) -> ort::Result<Arc<RunOptions>> {
        let mut run_options = RunOptions::new()?;
        let graph_id = self.next_graph_id.fetch_add(1, Ordering::Relaxed);
        run_options.set("gpu_graph_id", graph_id.to_string())?;
        Ok(Arc::new(run_options))
    }
}

/// A buffer set taken from the pool for one window, given back when dropped.
pub(super) struct Pooled<'b, T: Send + 'static> {
    pub backend: &'b OrtBackend,
    pub key: Key,
    buffers: Option<T>,
}

impl<'b, T: Send + 'static> Pooled<'b, T> {
    /// The pool's buffer set of `key`'s shape, or a new one from `make`.
    pub(super) fn take(
        backend: &'b OrtBackend,
        key: Key,
        make: impl FnOnce() -> Result<T>,
    ) -> Result<Self> {
        let buffers = match backend.unet_buffers.take::<T>(key) {
            Some(buffers) => buffers,
            None => make()?,
        };
        Ok(Pooled {
            backend,
            key,
            buffers: Some(buffers),
        })
    }

    pub(super) fn buffers(&mut self) -> &mut T {
        self.buffers.as_mut().expect("buffers until drop")
    }
}

impl<T: Send + 'static> Drop for Pooled<'_, T> {
    fn drop(&mut self) {
        if let Some(buffers) = self.buffers.take() {
            self.backend.unet_buffers.give_back(self.key, buffers);
        }
    }
}

/// The float element types of a U-Net graph.
pub(super) trait Float:
    PrimitiveTensorElementType + Copy + std::fmt::Debug + Send + 'static
{
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
    inputs: UnetInputs<F>,
    output: Tensor<F>,
    host_output: Tensor<F>,
    /// Its CUDA graph id; terminated by a cancel request, cleared before each run.
    run_options: Arc<RunOptions>,
}

// SAFETY: an `OrtIoBinding` has no thread affinity; a buffer set is used by
// one owner at a time (the pool's mutex or the window that took it out).
unsafe impl<F: Float> Send for Buffers<F> {}

/// The bound U-Net of one window.
struct Bound<'b, F: Float> {
    pooled: Pooled<'b, Buffers<F>>,
    bytes: u64,
}

/// Binds `constants` for the backend's U-Net, or `None` where this path does
/// not apply (see `bound_float`).
pub(super) fn bind<'b>(
    backend: &'b OrtBackend,
    constants: &UnetConstants<'_>,
) -> Result<Option<Box<dyn BoundUnet + 'b>>> {
    Ok(match bound_float(backend) {
        Some(false) => Some(Box::new(Bound::<f32>::new(backend, constants, false)?)),
        Some(true) => Some(Box::new(Bound::<half::f16>::new(backend, constants, true)?)),
        None => None,
    })
}

/// Whether the U-Net's float inputs are float16 (`Some(true)`) or float32,
/// or `None` where binding does not apply: timestep or fps not int64, or
/// sample and context of different float types.
pub(super) fn bound_float(backend: &OrtBackend) -> Option<bool> {
    let dtype = |name: &str| backend.graphs[Graph::Unet.index()].input_dtype(name);
    let float = dtype("sample");
    if dtype("context") != float
        || dtype("timestep") != Some(DType::I64)
        || dtype("fps") != Some(DType::I64)
    {
        return None;
    }
    match float {
        Some(DType::F32) => Some(false),
        Some(DType::F16) => Some(true),
        _ => None,
    }
}

impl<'b, F: Float> Bound<'b, F> {
    fn new(backend: &'b OrtBackend, c: &UnetConstants<'_>, half: bool) -> Result<Self> {
        let key = Key {
            half,
            batch: c.batch,
            latent: c.latent,
            tokens_dim: c.tokens_dim,
            windows: 0,
            rows: 0,
        };
        let err = |e: ort::Error| backend.run_err(Graph::Unet, e);
        let mut pooled = Pooled::take(backend, key, || {
            Buffers::<F>::new(backend, key).map_err(err)
        })?;
        let buffers = pooled.buffers();
        let bytes = buffers.inputs.copy_window(c).map_err(err)?;
        Ok(Bound { pooled, bytes })
    }
}

/// The U-Net's four inputs in the session's memory, bound by name: what the
/// bound U-Net here and the resident loop (`resident.rs`) both feed it.
pub(super) struct UnetInputs<F: Float> {
    /// `[batch, 9, 16, h, w]`: noisy latents, condition latents, mask.
    pub sample: Tensor<F>,
    context: Tensor<F>,
    fps: Tensor<i64>,
    pub timestep: Tensor<i64>,
}

impl<F: Float> UnetInputs<F> {
    /// The inputs of `key`'s shape, allocated with `device` and bound to `binding`.
    pub(super) fn bound(
        device: &Allocator,
        binding: &mut IoBinding,
        key: &Key,
    ) -> ort::Result<Self> {
        let Key {
            batch,
            latent: (h, w),
            tokens_dim: (tokens, dim),
            ..
        } = *key;
        let inputs = UnetInputs {
            sample: Tensor::<F>::new(device, [batch, 9, 16, h, w])?,
            context: Tensor::<F>::new(device, [batch, tokens, dim])?,
            fps: Tensor::<i64>::new(device, [batch])?,
            timestep: Tensor::<i64>::new(device, [batch])?,
        };
        binding.bind_input("sample", &inputs.sample)?;
        binding.bind_input("context", &inputs.context)?;
        binding.bind_input("fps", &inputs.fps)?;
        binding.bind_input("timestep", &inputs.timestep)?;
        Ok(inputs)
    }

    /// Copies in what stays the same for a window: its sample (the first
    /// step's), context and fps; the bytes copied.
    pub(super) fn copy_window(&mut self, c: &UnetConstants<'_>) -> ort::Result<u64> {
        Ok(copy_in(&mut self.sample, c.sample, 0)?
            + copy_in(&mut self.context, c.context, 0)?
            + copy_in(&mut self.fps, &vec![c.fps; c.batch], 0)?)
    }
}

impl<F: Float> Buffers<F> {
    fn new(backend: &OrtBackend, key: Key) -> ort::Result<Self> {
        let session = backend
            .session(Graph::Unet)
            .map_err(|e| ort::Error::new(e.to_string()))?;
        let (device, host) = allocators(backend, &session)?;
        let Key {
            batch,
            latent: (h, w),
            ..
        } = key;
        let latents = [batch, 4, 16, h, w];
        let mut output = Tensor::<F>::new(&device, latents)?;
        let mut binding = session.create_binding()?;
        let inputs = UnetInputs::bound(&device, &mut binding, &key)?;
        let output_name = Graph::Unet.contract().1[0];
        binding.bind_output(output_name, &mut output)?;
        let run_options = backend.unet_buffers.run_options()?;
        Ok(Buffers {
            binding,
            inputs,
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
pub(super) fn copy_in<T, V>(target: &mut Tensor<T>, values: &[V], at: usize) -> ort::Result<u64>
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
pub(super) struct Convert<T>(T);

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
        let (backend, key) = (self.pooled.backend, self.pooled.key);
        let err = |e: ort::Error| backend.run_err(Graph::Unet, e);
        let buffers = self.pooled.buffers();
        let Key {
            batch,
            latent: (h, w),
            ..
        } = key;
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
            self.bytes +=
                copy_in(&mut buffers.inputs.sample, values, item * item_len).map_err(err)?;
        }
        let timesteps = vec![timestep; batch];
        self.bytes += copy_in(&mut buffers.inputs.timestep, &timesteps, 0).map_err(err)?;
        run_tracked(
            &mut *backend.session(Graph::Unet)?,
            &buffers.binding,
            &buffers.run_options,
            cancel,
            err,
        )?;
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

/// The allocators of a binding: the session's device memory (the host's on
/// the CPU), and the host's.
pub(super) fn allocators(
    backend: &OrtBackend,
    session: &Session,
) -> ort::Result<(Allocator, Allocator)> {
    let device = if backend.provider.on_device() {
        Allocator::new(
            session,
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
    Ok((device, Allocator::default()))
}

/// Runs a bound session with `options`, which a cancel request terminates;
/// a run ended that way is [`crate::engine::EngineError::Cancelled`].
pub(super) fn run_tracked(
    session: &mut Session,
    binding: &IoBinding,
    options: &Arc<RunOptions>,
    cancel: &Cancel,
    err: impl Fn(ort::Error) -> crate::engine::EngineError,
) -> Result<()> {
    options.unterminate().map_err(&err)?;
    let _in_flight = cancel.track(options.clone())?;
    session
        .run_binding_with_options(binding, options)
        .map_err(|e| match cancel.check() {
            Err(cancelled) => cancelled,
            Ok(()) => err(e),
        })?;
    Ok(())
}
