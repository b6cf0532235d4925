// SPDX-License-Identifier: MPL-2.0
//! The GPU properties of the element (`cudnn-algo-search`, `cuda-graphs`,
//! `io-binding`, `tensorrt-cache`): their specs, their values as the
//! application set them, and the engine's GPU options they make (checked at READY).

use std::path::PathBuf;

use gst::glib;
use gst::prelude::*;

use crate::engine::{self, CudnnAlgoSearch, GpuOptions};

/// The GPU properties as set.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuSettings {
    pub cudnn_algo_search: String,
    pub cuda_graphs: bool,
    pub io_binding: bool,
    pub tensorrt_cache: Option<String>,
}

impl Default for GpuSettings {
    fn default() -> Self {
        let options = GpuOptions::default();
        GpuSettings {
            cudnn_algo_search: options.cudnn_algo_search.name().to_owned(),
            cuda_graphs: options.cuda_graphs,
            io_binding: options.io_binding,
            tensorrt_cache: None,
        }
    }
}

impl GpuSettings {
    /// The engine's options, or a sentence naming the property that is wrong.
    pub fn options(&self) -> Result<GpuOptions, String> {
        let cudnn_algo_search = CudnnAlgoSearch::parse(&self.cudnn_algo_search).map_err(|_| {
            format!(
                "cudnn-algo-search `{}` is not one of {}",
                self.cudnn_algo_search,
                CudnnAlgoSearch::NAMES
            )
        })?;
        let options = GpuOptions {
            cudnn_algo_search,
            cuda_graphs: self.cuda_graphs,
            io_binding: self.io_binding,
            tensorrt_cache: self
                .tensorrt_cache
                .as_deref()
                .filter(|p| !p.trim().is_empty())
                .map(PathBuf::from),
        };
        options.validate().map_err(|err| match err {
            engine::EngineError::InvalidInput(sentence) => sentence,
            other => other.to_string(),
        })?;
        Ok(options)
    }

    /// Stores a GPU property; `false` when `name` is not one.
    pub fn set(&mut self, name: &str, value: &glib::Value) -> bool {
        match name {
            "cudnn-algo-search" => {
                self.cudnn_algo_search = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_default()
            }
            "cuda-graphs" => self.cuda_graphs = value.get().expect("type checked upstream"),
            "io-binding" => self.io_binding = value.get().expect("type checked upstream"),
            "tensorrt-cache" => self.tensorrt_cache = value.get().expect("type checked upstream"),
            _ => return false,
        }
        true
    }

    /// A GPU property's value; `None` when `name` is not one.
    pub fn get(&self, name: &str) -> Option<glib::Value> {
        Some(match name {
            "cudnn-algo-search" => self.cudnn_algo_search.to_value(),
            "cuda-graphs" => self.cuda_graphs.to_value(),
            "io-binding" => self.io_binding.to_value(),
            "tensorrt-cache" => self.tensorrt_cache.to_value(),
            _ => return None,
        })
    }
}

/// The specs of the GPU properties.
pub fn specs() -> Vec<glib::ParamSpec> {
    let defaults = GpuSettings::default();
    vec![
        glib::ParamSpecString::builder("cudnn-algo-search")
            .nick("cuDNN algorithm search")
            .blurb("How cuDNN picks convolution algorithms on CUDA: exhaustive (times every algorithm on the \
                    first call of each shape: fastest, with a slow first window), heuristic or default")
            .default_value(Some(defaults.cudnn_algo_search.as_str()))
            .mutable_ready()
            .build(),
        glib::ParamSpecBoolean::builder("cuda-graphs")
            .nick("CUDA graphs")
            .blurb("Capture the U-Net as a CUDA graph per shape and replay it at every step (CUDA and TensorRT; \
                    needs io-binding)")
            .default_value(defaults.cuda_graphs)
            .mutable_ready()
            .build(),
        glib::ParamSpecBoolean::builder("io-binding")
            .nick("IO binding")
            .blurb("Keep a window's inputs in ONNX Runtime's memory (the GPU's) for all its steps; on a GPU \
                    the whole denoising loop stays there, each step sending only its timestep and step map \
                    and only the final latents coming back (stats: transfer-bytes)")
            .default_value(defaults.io_binding)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("tensorrt-cache")
            .nick("TensorRT engine cache")
            .blurb("Folder where execution-provider=tensorrt keeps its built engines and timing cache \
                    (made if missing); unset = engines are built again in every process")
            .mutable_ready()
            .build(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_properties_make_the_engine_options_or_name_the_bad_one() {
        gst::init().unwrap();
        let mut gpu = GpuSettings::default();
        assert_eq!(gpu.options().unwrap(), GpuOptions::default());
        assert!(gpu.set("cudnn-algo-search", &"exhaustive".to_value()));
        assert!(gpu.set("tensorrt-cache", &Some("/tmp/trt").to_value()));
        let options = gpu.options().unwrap();
        assert_eq!(options.cudnn_algo_search, CudnnAlgoSearch::Exhaustive);
        assert_eq!(options.tensorrt_cache, Some(PathBuf::from("/tmp/trt")));
        assert_eq!(
            gpu.get("cudnn-algo-search")
                .unwrap()
                .get::<String>()
                .unwrap(),
            "exhaustive"
        );
        assert!(!gpu.set("steps", &3u32.to_value()));
        gpu.set("cudnn-algo-search", &"fast".to_value());
        let err = gpu.options().unwrap_err();
        assert!(err.contains("cudnn-algo-search `fast`"), "{err}");
        gpu.set("cudnn-algo-search", &"heuristic".to_value());
        gpu.set("cuda-graphs", &true.to_value());
        gpu.set("io-binding", &false.to_value());
        let err = gpu.options().unwrap_err();
        assert!(err.contains("io-binding"), "{err}");
    }
}
