// SPDX-License-Identifier: MPL-2.0
//! ONNX Runtime for the engine: finding the shared library (`ORT_DYLIB_PATH`,
//! the path recorded at build time, the project venv), the one environment of
//! the process (shared by every model and element instance, its init error
//! remembered), and sessions on the requested execution provider (`cuda` that
//! cannot start is an error, `auto` says which provider it got).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::{Environment, GlobalThreadPoolOptions};
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

use super::error::{EngineError, Result};

mod providers;

pub use providers::{CudnnAlgoSearch, GpuOptions, GraphRole, cuda_unavailable_reason};

/// The execution provider a caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ExecutionProvider {
    /// CUDA when it starts, else the CPU (and a note saying why).
    #[default]
    Auto,
    /// CUDA or an error, never a silent CPU fallback.
    Cuda,
    /// TensorRT (with CUDA for what TensorRT does not take) or an error
    /// naming what is missing.
    TensorRt,
    Cpu,
}

/// How to open the sessions of a model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionConfig {
    pub provider: ExecutionProvider,
    pub device_id: i32,
    /// Intra-op threads of the model's own pool; 0 = the process's shared pool.
    pub threads: u32,
    /// The CUDA and TensorRT options (unused on the CPU).
    pub gpu: GpuOptions,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            provider: ExecutionProvider::Auto,
            device_id: super::limits::DEFAULT_DEVICE_ID,
            threads: super::limits::DEFAULT_THREADS,
            gpu: GpuOptions::default(),
        }
    }
}

/// The ONNX Runtime library path recorded when the crate was built (may be empty).
const BUILD_TIME_LIBRARY: &str = env!("M3DDM_ORT_DYLIB_BUILD");
/// The project's own venv, where `make venv` installs the `onnxruntime` wheel.
const PROJECT_VENV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv");
/// The library file name inside the pinned wheel.
const PINNED_LIBRARY: &str = "libonnxruntime.so.1.32.0";

const INSTALL_HINT: &str = "install it with `make venv` (or `pip install onnxruntime`, or `onnxruntime-gpu` for CUDA) \
     and/or point ORT_DYLIB_PATH at its libonnxruntime.so.<version>";

/// The execution provider a session actually runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Cpu,
    Cuda,
    TensorRt,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::TensorRt => "tensorrt",
        }
    }

    /// Whether the session's memory is on a GPU (then inputs cross to the device).
    pub fn on_device(self) -> bool {
        self != Provider::Cpu
    }
}

/// Finds the ONNX Runtime shared library: `ORT_DYLIB_PATH`, then the build-time
/// path, then the project venv.
pub fn find_library() -> Result<PathBuf> {
    find_library_in(
        std::env::var_os("ORT_DYLIB_PATH"),
        BUILD_TIME_LIBRARY,
        &venv_site_packages(Path::new(PROJECT_VENV)),
    )
}

/// The lookup of [`find_library`] on explicit inputs (testable).
/// An `ORT_DYLIB_PATH` that is set must name an existing file: it is never
/// silently skipped.
pub fn find_library_in(
    env_override: Option<OsString>,
    build_time: &str,
    site_packages: &[PathBuf],
) -> Result<PathBuf> {
    if let Some(path) = env_override.filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(EngineError::Runtime(format!(
                "ORT_DYLIB_PATH is set to {} but no such file exists; {INSTALL_HINT}",
                path.display()
            )))
        };
    }
    let mut searched = Vec::new();
    if !build_time.is_empty() {
        let path = PathBuf::from(build_time);
        if path.is_file() {
            return Ok(path);
        }
        searched.push(path);
    }
    for sp in site_packages {
        let capi = sp.join("onnxruntime").join("capi");
        let pinned = capi.join(PINNED_LIBRARY);
        if pinned.is_file() {
            return Ok(pinned);
        }
        if let Some(other) = newest_versioned_library(&capi) {
            return Ok(other);
        }
        searched.push(pinned);
    }
    let list: Vec<String> = searched.iter().map(|p| p.display().to_string()).collect();
    Err(EngineError::Runtime(format!(
        "the ONNX Runtime shared library was not found (looked for ORT_DYLIB_PATH, then {}); {INSTALL_HINT}",
        if list.is_empty() {
            "nothing else".to_owned()
        } else {
            list.join(", ")
        }
    )))
}

/// `site-packages` folders of a venv (any python version).
fn venv_site_packages(venv: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(venv.join("lib")) {
        for entry in entries.flatten() {
            let sp = entry.path().join("site-packages");
            if entry.file_name().to_string_lossy().starts_with("python") && sp.is_dir() {
                out.push(sp);
            }
        }
    }
    out.sort();
    out
}

/// The highest-versioned `libonnxruntime.so.X.Y.Z` in `dir` (the CPU and the
/// GPU wheels both install into `onnxruntime/capi`).
fn newest_versioned_library(dir: &Path) -> Option<PathBuf> {
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(version) = name.strip_prefix("libonnxruntime.so.") else {
            continue;
        };
        let Ok(parts) = version
            .split('.')
            .map(str::parse::<u32>)
            .collect::<std::result::Result<Vec<_>, _>>()
        else {
            continue;
        };
        if best.as_ref().is_none_or(|(v, _)| parts > *v) {
            best = Some((parts, entry.path()));
        }
    }
    best.map(|(_, p)| p)
}

struct LoadedRuntime {
    environment: Environment,
    library: PathBuf,
}

static RUNTIME: OnceLock<std::result::Result<LoadedRuntime, String>> = OnceLock::new();

/// The process's one ONNX Runtime environment, created on first use. A failure
/// is remembered and returned again (ONNX Runtime cannot be loaded twice).
pub fn environment() -> Result<&'static Environment> {
    loaded().map(|rt| &rt.environment)
}

/// The library the environment was loaded from.
pub fn library_path() -> Result<&'static Path> {
    loaded().map(|rt| rt.library.as_path())
}

fn loaded() -> Result<&'static LoadedRuntime> {
    RUNTIME
        .get_or_init(load_runtime)
        .as_ref()
        .map_err(|e| EngineError::Runtime(e.clone()))
}

fn load_runtime() -> std::result::Result<LoadedRuntime, String> {
    let library = find_library().map_err(|e| match e {
        EngineError::Runtime(s) => s,
        other => other.to_string(),
    })?;
    let builder = ort::init_from(&library).map_err(|e| {
        format!(
            "cannot load ONNX Runtime from {}: {e}; {INSTALL_HINT}",
            library.display()
        )
    })?;
    // No spinning: a waiting pool thread sleeps instead of burning a core that
    // the element's own threads (compositing, pushing) need; measured no slower.
    let pool = GlobalThreadPoolOptions::default()
        .with_intra_threads(intra_threads())
        .and_then(|p| p.with_inter_threads(1))
        .and_then(|p| p.with_spin_control(false))
        .map_err(|e| format!("cannot configure ONNX Runtime threads: {e}"))?;
    let environment = builder
        .with_name("m3ddm")
        .with_telemetry(false)
        .with_global_thread_pool(pool)
        .build()
        .map_err(|e| {
            format!(
                "cannot create the ONNX Runtime environment from {}: {e}",
                library.display()
            )
        })?;
    Ok(LoadedRuntime {
        environment,
        library,
    })
}

/// Intra-op threads: `M3DDM_THREADS` when set to a positive number, else the available cores.
fn intra_threads() -> usize {
    std::env::var("M3DDM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

/// A session and the execution provider it runs on.
pub struct OpenedSession {
    pub session: Session,
    pub provider: Provider,
    /// With `auto` on the CPU: why CUDA was not used.
    pub fallback_reason: Option<String>,
}

/// Opens one graph on the requested execution provider and says which one it got.
/// `Cuda` and `TensorRt` that cannot start are an error; `Auto` falls back to
/// CPU and says why. `graph_role` picks the per-graph options (CUDA graphs only
/// where shapes and buffers are fixed: the bound U-Net).
pub fn open_session(
    graph: &Path,
    config: &SessionConfig,
    role: GraphRole,
) -> Result<OpenedSession> {
    let env = environment()?;
    let opened = |session, provider, fallback_reason| OpenedSession {
        session,
        provider,
        fallback_reason,
    };
    let device_id = config.device_id;
    let builder = || base_builder(env, config);
    match config.provider {
        ExecutionProvider::Cpu => Ok(opened(
            commit(providers::cpu(builder()?)?, graph)?,
            Provider::Cpu,
            None,
        )),
        ExecutionProvider::Cuda => Ok(opened(
            commit(providers::cuda(builder()?, config, role)?, graph)?,
            Provider::Cuda,
            None,
        )),
        ExecutionProvider::TensorRt => Ok(opened(
            commit(providers::tensorrt(builder()?, config, role)?, graph)?,
            Provider::TensorRt,
            None,
        )),
        ExecutionProvider::Auto => match providers::cuda(builder()?, config, role) {
            Ok(cuda) => Ok(opened(commit(cuda, graph)?, Provider::Cuda, None)),
            Err(why) => Ok(opened(
                commit(providers::cpu(builder()?)?, graph)?,
                Provider::Cpu,
                Some(format!("device {device_id}: {why}")),
            )),
        },
    }
}

/// A session for a small graph built in memory (ort's model editor: the
/// denoising step of `model/onnx/resident.rs`) on `provider`'s device: the
/// CPU, or CUDA for both GPU providers (TensorRT would hand such a graph back
/// to CUDA anyway).
pub fn open_built_session(
    model: ort::editor::Model,
    config: &SessionConfig,
    provider: Provider,
    what: &str,
) -> Result<Session> {
    let builder = base_builder(environment()?, config)?;
    let builder = match provider {
        Provider::Cpu => providers::cpu(builder)?,
        Provider::Cuda | Provider::TensorRt => providers::cuda(builder, config, GraphRole::Other)?,
    };
    model
        .into_session(&builder)
        .map_err(|e| EngineError::Runtime(format!("ONNX Runtime cannot open {what}: {e}")))
}

/// All graph optimisations; the shared thread pool, or a pool of `threads` of the session's own.
fn base_builder(env: &Environment, config: &SessionConfig) -> Result<SessionBuilder> {
    let runtime_err =
        |what: &str, e: &dyn std::fmt::Display| EngineError::Runtime(format!("{what}: {e}"));
    let builder = Session::builder(env)
        .map_err(|e| runtime_err("cannot create a session builder", &e))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| runtime_err("cannot set the graph optimization level", &e))?;
    if config.threads == 0 {
        return Ok(builder);
    }
    let threads = config.threads;
    let builder = builder
        .with_independent_thread_pool()
        .map_err(|e| runtime_err("cannot give the session its own threads", &e))?;
    let builder = builder
        .with_intra_threads(threads as usize)
        .map_err(|e| runtime_err(&format!("cannot use {threads} threads"), &e))?;
    builder
        .with_intra_op_spinning(false)
        .map_err(|e| runtime_err("cannot turn thread spinning off", &e))
}

fn commit(mut builder: SessionBuilder, graph: &Path) -> Result<Session> {
    builder.commit_from_file(graph).map_err(|e| {
        EngineError::Model(format!(
            "{} is not a graph ONNX Runtime can load: {e}",
            graph.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::test_support::scratch_dir;

    #[test]
    fn missing_override_is_an_error_naming_it() {
        let err =
            find_library_in(Some("/nonexistent/libonnxruntime.so.9".into()), "", &[]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("ORT_DYLIB_PATH") && text.contains("/nonexistent/libonnxruntime.so.9"),
            "{text}"
        );
    }

    #[test]
    fn nothing_found_says_how_to_install() {
        let dir = scratch_dir("runtime-none");
        let err = find_library_in(None, "/nonexistent/recorded.so", std::slice::from_ref(&dir))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("make venv") && text.contains("pip install onnxruntime"),
            "{text}"
        );
        assert!(text.contains("/nonexistent/recorded.so"), "{text}");
    }

    #[test]
    fn lookup_order_is_override_then_build_time_then_venv() {
        let dir = scratch_dir("runtime-order");
        let capi = dir.join("sp").join("onnxruntime").join("capi");
        std::fs::create_dir_all(&capi).unwrap();
        let venv_lib = capi.join(PINNED_LIBRARY);
        let recorded = dir.join("recorded.so");
        let override_lib = dir.join("override.so");
        for f in [&venv_lib, &recorded, &override_lib] {
            std::fs::write(f, b"x").unwrap();
        }
        let sp = vec![dir.join("sp")];
        let rec = recorded.to_str().unwrap();
        assert_eq!(
            find_library_in(Some(override_lib.clone().into()), rec, &sp).unwrap(),
            override_lib
        );
        assert_eq!(find_library_in(None, rec, &sp).unwrap(), recorded);
        assert_eq!(find_library_in(None, "", &sp).unwrap(), venv_lib);
    }

    #[test]
    fn venv_lookup_takes_the_newest_other_version() {
        let dir = scratch_dir("runtime-glob");
        let capi = dir.join("onnxruntime").join("capi");
        std::fs::create_dir_all(&capi).unwrap();
        for name in [
            "libonnxruntime.so.1.26.0",
            "libonnxruntime.so.1.31.1",
            "libonnxruntime_providers_cuda.so",
        ] {
            std::fs::write(capi.join(name), b"x").unwrap();
        }
        assert_eq!(
            find_library_in(None, "", std::slice::from_ref(&dir)).unwrap(),
            capi.join("libonnxruntime.so.1.31.1")
        );
    }

    #[test]
    fn the_project_venv_library_loads_once_for_the_process() {
        // Every test in this binary shares the one environment; a second call
        // returns the same one.
        let first = environment().expect("the venv's ONNX Runtime loads") as *const Environment;
        let second = environment().unwrap() as *const Environment;
        assert_eq!(first, second);
        assert!(library_path().unwrap().is_file());
    }
}
