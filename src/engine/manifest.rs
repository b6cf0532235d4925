// SPDX-License-Identifier: MPL-2.0
//! The model directory's `manifest.json` (DESIGN.md §1): its format and
//! version, the engine's input/output contract of each of the four graphs,
//! and the presence and sha256 of the graph files and of their external data.
//! Each refusal is a sentence naming what is wrong. A file's verified hash is
//! remembered for the process by (path, size, mtime, inode), so that loading a
//! 2.6 GB model a second time does not read it again.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::SystemTime;

use ort::value::TensorElementType;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::{EngineError, Result};
use super::limits::check_canvas_side;
use super::planner::Strides;

/// The only manifest format this engine reads.
pub const MANIFEST_FORMAT: &str = "m3ddm-onnx";
pub const MANIFEST_VERSION: u64 = 1;

/// The four graphs of a model directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Graph {
    Unet,
    GlobalEncoder,
    VaeEncoder,
    VaeDecoder,
}

impl Graph {
    pub const ALL: [Graph; 4] = [
        Graph::Unet,
        Graph::GlobalEncoder,
        Graph::VaeEncoder,
        Graph::VaeDecoder,
    ];

    /// The key in the manifest's `graphs`.
    pub fn key(self) -> &'static str {
        match self {
            Graph::Unet => "unet",
            Graph::GlobalEncoder => "global_encoder",
            Graph::VaeEncoder => "vae_encoder",
            Graph::VaeDecoder => "vae_decoder",
        }
    }

    /// The graph's name in sentences.
    pub fn title(self) -> &'static str {
        match self {
            Graph::Unet => "U-Net",
            Graph::GlobalEncoder => "global image encoder",
            Graph::VaeEncoder => "VAE encoder",
            Graph::VaeDecoder => "VAE decoder",
        }
    }

    /// The engine's contract: input names, then output names.
    pub(crate) fn contract(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Graph::Unet => (&["sample", "timestep", "fps", "context"], &["noise_pred"]),
            Graph::GlobalEncoder => (&["global_latents"], &["context"]),
            Graph::VaeEncoder => (&["images"], &["latent_mean"]),
            Graph::VaeDecoder => (&["latents"], &["images"]),
        }
    }

    /// The shape the engine needs of one of its tensors, as DESIGN.md §1 writes
    /// it (`B,9,16,h,w`: numbers are fixed, letters free).
    pub(crate) fn contract_shape(self, tensor: &str) -> Option<&'static str> {
        Some(match (self, tensor) {
            (Graph::Unet, "sample") => "B,9,16,h,w",
            (Graph::Unet, "timestep" | "fps") => "B",
            (Graph::Unet, "context") => "B,T,D",
            (Graph::Unet, "noise_pred") => "B,4,16,h,w",
            (Graph::GlobalEncoder, "global_latents") => "16,4,h,w",
            (Graph::GlobalEncoder, "context") => "1,T,D",
            (Graph::VaeEncoder | Graph::VaeDecoder, "images") => "N,3,H,W",
            (Graph::VaeEncoder, "latent_mean") | (Graph::VaeDecoder, "latents") => "N,4,h,w",
            _ => return None,
        })
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Element type of a graph input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    F16,
    I64,
}

impl DType {
    fn parse(s: &str) -> Option<DType> {
        match s {
            "float32" => Some(DType::F32),
            "float16" => Some(DType::F16),
            "int64" => Some(DType::I64),
            _ => None,
        }
    }
    pub(crate) fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::I64 => "int64",
        }
    }
    /// Bytes per element.
    pub fn size_of(self) -> usize {
        match self {
            DType::F16 => 2,
            DType::F32 => 4,
            DType::I64 => 8,
        }
    }
    pub(crate) fn of_ort(t: TensorElementType) -> Option<DType> {
        match t {
            TensorElementType::Float32 => Some(DType::F32),
            TensorElementType::Float16 => Some(DType::F16),
            TensorElementType::Int64 => Some(DType::I64),
            _ => None,
        }
    }
}

/// One graph input or output as the manifest declares it; `None` dims are symbolic.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<Option<i64>>,
}

/// A file of the model directory and its recorded sha256.
#[derive(Debug, Clone, PartialEq)]
pub struct HashedFile {
    pub file: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GraphSpec {
    pub file: String,
    pub sha256: String,
    /// The ONNX external data of a graph whose weights exceed 2 GB.
    pub external_data: Option<HashedFile>,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

impl GraphSpec {
    /// The dtype the manifest declares for input `name`.
    pub fn input_dtype(&self, name: &str) -> Option<DType> {
        self.inputs.iter().find(|t| t.name == name).map(|t| t.dtype)
    }

    /// The graph file and its external data file, if any.
    pub fn files(&self) -> impl Iterator<Item = HashedFile> + '_ {
        std::iter::once(HashedFile {
            file: self.file.clone(),
            sha256: self.sha256.clone(),
        })
        .chain(self.external_data.clone())
    }
}

/// The parsed `manifest.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub precision: String,
    pub canvas: u32,
    pub latent_scale: f32,
    pub unet_config: Value,
    pub vae_config: Value,
    pub scheduler_config: Value,
    /// In [`Graph::ALL`] order.
    pub graphs: Vec<GraphSpec>,
    /// The model's default coarse-to-fine strides (`strides`; absent: the
    /// official 15, 5, 1).
    pub strides: Strides,
}

impl Manifest {
    pub fn graph(&self, graph: Graph) -> &GraphSpec {
        &self.graphs[graph.index()]
    }

    /// Reads `dir/manifest.json` and checks its structure (not the graph files).
    pub fn read(dir: &Path) -> Result<Manifest> {
        if !dir.is_dir() {
            return Err(model_err(format!(
                "the model directory {} does not exist",
                dir.display()
            )));
        }
        let path = dir.join("manifest.json");
        let text = read_manifest_text(&path).map_err(|e| {
            model_err(format!(
                "{} has no readable manifest.json ({e}); export a model directory with `python -m m3ddm_export`",
                dir.display()
            ))
        })?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| model_err(format!("{} is not valid JSON: {e}", path.display())))?;
        Manifest::from_json(&json).map_err(|why| model_err(format!("{}: {why}", path.display())))
    }

    fn from_json(json: &Value) -> std::result::Result<Manifest, String> {
        let format = json["format"].as_str().unwrap_or("<missing>");
        let version = json["format_version"].as_u64();
        if format != MANIFEST_FORMAT || version != Some(MANIFEST_VERSION) {
            return Err(format!(
                "format `{format}` version {} is not the `{MANIFEST_FORMAT}` version {MANIFEST_VERSION} this engine reads",
                version.map_or("<missing>".into(), |v| v.to_string())
            ));
        }
        let canvas = json["canvas"]
            .as_u64()
            .filter(|c| *c <= 8192 && check_canvas_side(*c as usize).is_ok());
        let canvas = canvas.ok_or("`canvas` must be a positive multiple of 8 up to 8192")? as u32;
        let latent_scale = json["latent_scale"]
            .as_f64()
            .filter(|s| *s > 0.0)
            .ok_or("`latent_scale` must be a positive number")?;
        let precision = json["precision"]
            .as_str()
            .ok_or("`precision` is missing")?
            .to_owned();
        let mut graphs = Vec::new();
        for graph in Graph::ALL {
            let spec = &json["graphs"][graph.key()];
            if spec.is_null() {
                return Err(format!("`graphs` has no `{}` entry", graph.key()));
            }
            graphs.push(
                parse_graph_spec(graph, spec)
                    .map_err(|why| format!("graph `{}`: {why}", graph.key()))?,
            );
        }
        for key in ["unet_config", "vae_config", "scheduler_config"] {
            if !json[key].is_object() {
                return Err(format!("`{key}` is missing"));
            }
        }
        let strides = match &json["strides"] {
            Value::Null => Strides::official(),
            list => serde_json::from_value::<Vec<usize>>(list.clone())
                .map_err(|_| {
                    "`strides` must be a list of whole numbers, e.g. [15, 5, 1]".to_string()
                })
                .and_then(|list| {
                    Strides::new(list).map_err(|e| format!("`strides`: {}", e.sentence()))
                })?,
        };
        Ok(Manifest {
            strides,
            precision,
            canvas,
            latent_scale: latent_scale as f32,
            unet_config: json["unet_config"].clone(),
            vae_config: json["vae_config"].clone(),
            scheduler_config: json["scheduler_config"].clone(),
            graphs,
        })
    }
}

/// A `manifest.json` larger than this is not one (the tiny model's is 3 KB).
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// The text of a manifest: a regular file of at most [`MAX_MANIFEST_BYTES`],
/// read no further than that (a link to a device or a huge file is refused).
fn read_manifest_text(path: &Path) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let refuse = |why: String| Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
    if !meta.is_file() {
        return refuse("it is not a regular file".into());
    }
    if meta.len() > MAX_MANIFEST_BYTES {
        return refuse(format!(
            "{} bytes, more than the {MAX_MANIFEST_BYTES} a manifest may have",
            meta.len()
        ));
    }
    let mut text = String::new();
    file.take(MAX_MANIFEST_BYTES).read_to_string(&mut text)?;
    Ok(text)
}

/// The path of `file`, a file the manifest of `dir` names, once it is known
/// to lie inside the model directory: links are followed and the file they
/// reach must lie under the directory's own canonical path.
pub fn file_in_model_dir(dir: &Path, graph: Graph, file: &str) -> Result<PathBuf> {
    let path = dir.join(file);
    let missing = |e: std::io::Error| {
        model_err(format!(
            "the {} graph's file {} is missing ({e})",
            graph.key(),
            path.display()
        ))
    };
    let real_dir = dir.canonicalize().map_err(missing)?;
    let real = path.canonicalize().map_err(missing)?;
    if !real.starts_with(&real_dir) {
        return Err(model_err(format!(
            "the {} graph's file {} leads to {}, outside the model directory {}: refused",
            graph.key(),
            path.display(),
            real.display(),
            real_dir.display()
        )));
    }
    Ok(real)
}

/// `{"file": …, "sha256": …}`: a plain file name inside the model directory and its hash.
fn parse_hashed_file(spec: &Value) -> std::result::Result<HashedFile, String> {
    let file = spec["file"]
        .as_str()
        .filter(|f| !f.is_empty())
        .ok_or("no `file`")?;
    let mut components = Path::new(file).components();
    let plain = matches!(components.next(), Some(std::path::Component::Normal(_)))
        && components.next().is_none();
    if !plain {
        return Err(format!(
            "file `{file}` is not a plain file name inside the model directory: refused"
        ));
    }
    let sha256 = spec["sha256"]
        .as_str()
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| format!("`{file}` has no 64-digit hex `sha256`"))?
        .to_ascii_lowercase();
    Ok(HashedFile {
        file: file.to_owned(),
        sha256,
    })
}

fn parse_graph_spec(graph: Graph, spec: &Value) -> std::result::Result<GraphSpec, String> {
    let HashedFile { file, sha256 } = parse_hashed_file(spec)?;
    let external_data = match &spec["external_data"] {
        Value::Null => None,
        data => Some(parse_hashed_file(data).map_err(|why| format!("external_data: {why}"))?),
    };
    let inputs = parse_tensor_specs(&spec["inputs"]).map_err(|why| format!("inputs: {why}"))?;
    let outputs = parse_tensor_specs(&spec["outputs"]).map_err(|why| format!("outputs: {why}"))?;
    let (want_in, want_out) = graph.contract();
    for (what, got, want) in [
        ("inputs", &inputs, want_in),
        ("outputs", &outputs, want_out),
    ] {
        let mut names: Vec<&str> = got.iter().map(|t| t.name.as_str()).collect();
        let mut wanted: Vec<&str> = want.to_vec();
        names.sort_unstable();
        wanted.sort_unstable();
        if names != wanted {
            return Err(format!(
                "{what} are {names:?} but the engine needs {wanted:?}"
            ));
        }
    }
    for tensor in inputs.iter().chain(&outputs) {
        check_contract_shape(graph, tensor)?;
    }
    Ok(GraphSpec {
        file,
        sha256,
        external_data,
        inputs,
        outputs,
    })
}

/// Refuses a declared shape of another rank than the engine's, or with
/// another number where the engine's is fixed (symbolic names fit any).
fn check_contract_shape(graph: Graph, tensor: &TensorSpec) -> std::result::Result<(), String> {
    let Some(contract) = graph.contract_shape(&tensor.name) else {
        return Ok(());
    };
    let needed: Vec<Option<i64>> = contract.split(',').map(|d| d.parse().ok()).collect();
    let fits = needed.len() == tensor.shape.len()
        && needed
            .iter()
            .zip(&tensor.shape)
            .all(|(need, got)| need.is_none() || got.is_none() || need == got);
    if fits {
        return Ok(());
    }
    Err(format!(
        "`{}` has shape {} where the engine needs [{contract}]",
        tensor.name,
        shape_text(&tensor.shape)
    ))
}

/// A declared shape as `[?,9,16,?,?]` (`?` for a symbolic dim).
pub(crate) fn shape_text(shape: &[Option<i64>]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| d.map_or("?".to_owned(), |d| d.to_string()))
        .collect();
    format!("[{}]", dims.join(","))
}

fn parse_tensor_specs(list: &Value) -> std::result::Result<Vec<TensorSpec>, String> {
    let items = list.as_array().ok_or("not a list")?;
    items
        .iter()
        .map(|item| {
            let name = item["name"]
                .as_str()
                .ok_or("an entry has no `name`")?
                .to_owned();
            let dtype_text = item["dtype"].as_str().unwrap_or("<missing>");
            let dtype = DType::parse(dtype_text)
                .ok_or_else(|| format!("`{name}` has unsupported dtype `{dtype_text}`"))?;
            let dims = item["shape"]
                .as_array()
                .ok_or_else(|| format!("`{name}` has no `shape` list"))?;
            let shape = dims.iter().map(|d| d.as_i64()).collect();
            Ok(TensorSpec { name, dtype, shape })
        })
        .collect()
}

pub(crate) fn model_err(s: String) -> EngineError {
    EngineError::Model(s)
}

/// Lowercase hex sha256 of a file, read in blocks.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A file's identity for the hash cache: its size, modification time and
/// (on Unix) inode, so that a file replaced by another is read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> FileStamp {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        }
    }
}

/// Verified digests by canonical path, valid while the file's stamp is unchanged.
static VERIFIED: LazyLock<Mutex<HashMap<PathBuf, (FileStamp, String)>>> =
    LazyLock::new(Default::default);

/// The sha256 of `path`, read once per (path, size, mtime, inode) in this process.
pub fn cached_sha256(path: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    let stamp = FileStamp::of(&meta);
    let key = path.canonicalize()?;
    let cache = |map: &HashMap<PathBuf, (FileStamp, String)>| {
        map.get(&key)
            .filter(|(seen, _)| *seen == stamp)
            .map(|(_, digest)| digest.clone())
    };
    if let Some(digest) = cache(&VERIFIED.lock().unwrap()) {
        return Ok(digest);
    }
    let digest = sha256_file(path)?;
    VERIFIED
        .lock()
        .unwrap()
        .insert(key, (stamp, digest.clone()));
    Ok(digest)
}

/// Checks the files of a manifest: every graph and external data file present,
/// with the recorded sha256.
pub fn check_graph_files(dir: &Path, manifest: &Manifest) -> Result<()> {
    for graph in Graph::ALL {
        for hashed in manifest.graph(graph).files() {
            let path = file_in_model_dir(dir, graph, &hashed.file)?;
            if !path.is_file() {
                return Err(model_err(format!(
                    "the {} graph's file {} is missing",
                    graph.key(),
                    path.display()
                )));
            }
            let digest = cached_sha256(&path)
                .map_err(|e| model_err(format!("cannot read {}: {e}", path.display())))?;
            if digest != hashed.sha256 {
                return Err(model_err(format!(
                    "{} does not match its manifest: sha256 {digest}, manifest says {} (re-export the model directory)",
                    path.display(),
                    hashed.sha256
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::test_support::scratch_dir;

    #[test]
    fn sha256_of_a_known_text() {
        let dir = scratch_dir("manifest-sha");
        let path = dir.join("abc.txt");
        std::fs::write(&path, b"abc").unwrap();
        // FIPS 180-2 test vector.
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
