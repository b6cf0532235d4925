// SPDX-License-Identifier: MPL-2.0
//! The execution providers of a session and their options: the CPU; CUDA
//! (cuDNN's convolution algorithm search, CUDA graphs on the graphs whose
//! shapes and buffers are fixed); TensorRT (its engine cache folder, CUDA under
//! it for the nodes TensorRT does not take). A provider that cannot start is
//! an error naming what is missing: not in this ONNX Runtime build, or its
//! libraries (CUDA, cuDNN, libnvinfer) not found, or no device.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::ep;
use ort::session::builder::SessionBuilder;

use super::{EngineError, Result, SessionConfig, library_path};

/// cuDNN's choice of convolution algorithm (the CUDA EP's `cudnn_conv_algo_search`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CudnnAlgoSearch {
    /// Times every algorithm on the first call of each shape: the fastest, a slow first window.
    Exhaustive,
    /// cuDNN's heuristics, no timing.
    #[default]
    Heuristic,
    /// The default algorithm of each convolution.
    Default,
}

impl CudnnAlgoSearch {
    pub const NAMES: &'static str = "exhaustive, heuristic or default";

    pub fn parse(text: &str) -> Result<CudnnAlgoSearch> {
        match text.trim().to_ascii_lowercase().as_str() {
            "exhaustive" => Ok(CudnnAlgoSearch::Exhaustive),
            "heuristic" => Ok(CudnnAlgoSearch::Heuristic),
            "default" => Ok(CudnnAlgoSearch::Default),
            other => Err(EngineError::InvalidInput(format!(
                "the cuDNN algorithm search `{other}` is not one of {}",
                Self::NAMES
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CudnnAlgoSearch::Exhaustive => "exhaustive",
            CudnnAlgoSearch::Heuristic => "heuristic",
            CudnnAlgoSearch::Default => "default",
        }
    }

    fn ort(self) -> ep::cuda::ConvAlgorithmSearch {
        match self {
            CudnnAlgoSearch::Exhaustive => ep::cuda::ConvAlgorithmSearch::Exhaustive,
            CudnnAlgoSearch::Heuristic => ep::cuda::ConvAlgorithmSearch::Heuristic,
            CudnnAlgoSearch::Default => ep::cuda::ConvAlgorithmSearch::Default,
        }
    }
}

/// The options of the GPU providers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GpuOptions {
    pub cudnn_algo_search: CudnnAlgoSearch,
    /// CUDA graphs for the U-Net, whose inputs are bound to fixed device buffers.
    pub cuda_graphs: bool,
    /// The U-Net's inputs stay on the device across the steps of a window.
    pub io_binding: bool,
    /// TensorRT's engine cache folder; none = no cache (engines are rebuilt).
    pub tensorrt_cache: Option<PathBuf>,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            cudnn_algo_search: CudnnAlgoSearch::default(),
            cuda_graphs: false,
            io_binding: true,
            tensorrt_cache: None,
        }
    }
}

impl GpuOptions {
    /// The options checked together: CUDA graphs replay fixed buffers, so they need IO binding.
    pub fn validate(&self) -> Result<()> {
        if self.cuda_graphs && !self.io_binding {
            return Err(EngineError::InvalidInput(
                "CUDA graphs need IO binding (a captured graph reads fixed device buffers): \
                 turn io-binding on or cuda-graphs off"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// What a session runs, for its per-graph options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphRole {
    /// The U-Net, called through IO binding when it is on.
    Unet,
    /// The VAE and the image encoder, called with host inputs of varying batch.
    Other,
}

pub(super) fn cpu(builder: SessionBuilder) -> Result<SessionBuilder> {
    builder
        .with_execution_providers([ep::CPU::default().build().error_on_failure()])
        .map_err(|e| EngineError::Runtime(format!("cannot start the CPU execution provider: {e}")))
}

/// The CUDA EP with `config`'s options.
fn cuda_provider(config: &SessionConfig, role: GraphRole) -> ep::CUDA {
    ep::CUDA::default()
        .with_device_id(config.device_id)
        .with_conv_algorithm_search(config.gpu.cudnn_algo_search.ort())
        .with_arena_extend_strategy(ep::ArenaExtendStrategy::SameAsRequested)
        .with_cuda_graph(uses_cuda_graph(config, role))
}

/// Whether a graph of `role` is captured as a CUDA graph.
pub(super) fn uses_cuda_graph(config: &SessionConfig, role: GraphRole) -> bool {
    role == GraphRole::Unet && config.gpu.cuda_graphs && config.gpu.io_binding
}

pub(super) fn cuda(
    builder: SessionBuilder,
    config: &SessionConfig,
    role: GraphRole,
) -> Result<SessionBuilder> {
    let device_id = config.device_id;
    if let Some(reason) = not_in_build::<ep::CUDA>("CUDA") {
        return Err(EngineError::Runtime(reason));
    }
    preload_venv_cuda_libraries();
    let cuda = cuda_provider(config, role).build().error_on_failure();
    builder.with_execution_providers([cuda]).map_err(|e| {
        EngineError::Runtime(format!(
            "the CUDA execution provider cannot start on device {device_id}: {e} \
             (it needs the onnxruntime-gpu wheel, its CUDA libraries and a GPU: `make gpu-venv`; \
             use execution-provider=cpu otherwise)"
        ))
    })
}

pub(super) fn tensorrt(
    builder: SessionBuilder,
    config: &SessionConfig,
    role: GraphRole,
) -> Result<SessionBuilder> {
    let device_id = config.device_id;
    if let Some(reason) = not_in_build::<ep::TensorRT>("TensorRT") {
        return Err(EngineError::Runtime(reason));
    }
    preload_venv_cuda_libraries();
    let mut trt = ep::TensorRT::default()
        .with_device_id(device_id)
        .with_fp16(true)
        .with_cuda_graph(uses_cuda_graph(config, role));
    if let Some(cache) = &config.gpu.tensorrt_cache {
        std::fs::create_dir_all(cache).map_err(|e| {
            EngineError::Runtime(format!(
                "the TensorRT engine cache folder {} cannot be made: {e}",
                cache.display()
            ))
        })?;
        let cache = cache.display().to_string();
        trt = trt
            .with_engine_cache(true)
            .with_engine_cache_path(&cache)
            .with_timing_cache(true)
            .with_timing_cache_path(cache);
    }
    // CUDA graphs belong to TensorRT's own engines here; CUDA takes the rest without.
    let mut under = config.clone();
    under.gpu.cuda_graphs = false;
    let cuda = cuda_provider(&under, role).build().error_on_failure();
    builder
        .with_execution_providers([trt.build().error_on_failure(), cuda])
        .map_err(|e| {
            EngineError::Runtime(format!(
                "the TensorRT execution provider cannot start on device {device_id}: {e} \
                 (it needs TensorRT's libnvinfer.so.10 on the loader path, e.g. from the \
                 tensorrt-cu13-libs wheel, besides the CUDA libraries and a GPU)"
            ))
        })
}

/// Why `E` cannot run at all: it is not compiled into the loaded ONNX Runtime.
fn not_in_build<E: ep::ExecutionProvider>(what: &str) -> Option<String> {
    let library = library_path().map_or_else(|_| "?".to_owned(), |p| p.display().to_string());
    match E::is_available() {
        Ok(true) => None,
        Ok(false) => Some(format!(
            "the {what} execution provider is not in this ONNX Runtime build ({library}; \
             the onnxruntime-gpu wheel has it: `make gpu-venv`)"
        )),
        Err(e) => Some(format!(
            "cannot ask ONNX Runtime ({library}) for its providers: {e}"
        )),
    }
}

/// Why a CUDA session cannot open on `device_id`, or `None` when one does:
/// the check that GPU tests make before they run (and skip with this reason).
pub fn cuda_unavailable_reason(device_id: i32) -> Option<String> {
    let env = match super::environment() {
        Ok(env) => env,
        Err(e) => return Some(e.to_string()),
    };
    let config = SessionConfig {
        provider: super::ExecutionProvider::Cuda,
        device_id,
        ..SessionConfig::default()
    };
    let builder = match super::base_builder(env, &config) {
        Ok(builder) => builder,
        Err(e) => return Some(e.to_string()),
    };
    cuda(builder, &config, GraphRole::Other)
        .err()
        .map(|e| e.to_string())
}

/// The `onnxruntime-gpu` wheel finds its CUDA libraries only on the loader path;
/// when the pip `nvidia-*` wheels sit next to it in the same site-packages,
/// load them first (best effort: a failure shows up when CUDA registers).
fn preload_venv_cuda_libraries() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let Ok(library) = library_path() else { return };
        // <site-packages>/onnxruntime/capi/libonnxruntime.so.X
        let Some(site_packages) = library
            .parent()
            .and_then(Path::parent)
            .and_then(Path::parent)
        else {
            return;
        };
        let cuda = site_packages.join("nvidia").join("cu13").join("lib");
        let cudnn = site_packages.join("nvidia").join("cudnn").join("lib");
        let _ = ep::cuda::preload_dylibs(
            cuda.is_dir().then_some(cuda.as_path()),
            cudnn.is_dir().then_some(cudnn.as_path()),
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cudnn_algo_search_parses_its_three_names_and_refuses_others() {
        for search in [
            CudnnAlgoSearch::Exhaustive,
            CudnnAlgoSearch::Heuristic,
            CudnnAlgoSearch::Default,
        ] {
            assert_eq!(CudnnAlgoSearch::parse(search.name()).unwrap(), search);
        }
        assert_eq!(
            CudnnAlgoSearch::parse(" Exhaustive ").unwrap(),
            CudnnAlgoSearch::Exhaustive
        );
        let err = CudnnAlgoSearch::parse("fastest").unwrap_err().to_string();
        assert!(
            err.contains("`fastest`") && err.contains("exhaustive"),
            "{err}"
        );
    }

    #[test]
    fn cuda_graphs_need_io_binding_and_only_the_unet_gets_them() {
        let mut config = SessionConfig::default();
        config.gpu.cuda_graphs = true;
        config.gpu.io_binding = false;
        let err = config.gpu.validate().unwrap_err().to_string();
        assert!(err.contains("io-binding"), "{err}");
        assert!(!uses_cuda_graph(&config, GraphRole::Unet));
        config.gpu.io_binding = true;
        config.gpu.validate().unwrap();
        assert!(uses_cuda_graph(&config, GraphRole::Unet));
        assert!(!uses_cuda_graph(&config, GraphRole::Other));
    }
}
