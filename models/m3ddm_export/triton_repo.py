"""A Triton model repository for a model directory (`python -m m3ddm_export triton-repo`).

Per graph: `NAME/config.pbtxt` and `NAME/1/model.onnx`, a hard link to the graph (a copy
across file systems), with its ONNX external data file next to it under its own name:
ONNX Runtime resolves external data relative to the graph file, and Triton's onnxruntime
backend creates its session from that path.

What a client of the Open Inference Protocol sees follows from the manifest:
- unet, vae_encoder, vae_decoder are batched (`max_batch_size` > 0, dynamic batching): dims
  leave out the leading batch axis, named axes are -1. A tensor that is only the batch axis
  (`timestep` and `fps`, `[B]`) is served as `[B, 1]` and reshaped to `[B]` for the graph,
  because Triton wants at least one dim after the batch axis.
- global_encoder has `max_batch_size: 0` and its full shapes: its leading 16 is the 16
  global frames of one clip and its output's leading 1 is that clip's one context, so
  stacking requests would not stack clips. It runs once per clip.

Only the standard library is used here: the test server (models/serving) imports this
module from a venv without PyTorch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .config import GLOBAL_FRAMES, global_grid
from .errors import ExportError

GRAPH_NAMES = ("unet", "global_encoder", "vae_encoder", "vae_decoder")
UNBATCHED_GRAPHS = frozenset({"global_encoder"})
BATCH_AXIS = "batch"
DATA_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64"}
MODEL_FILE = "model.onnx"
VERSION = "1"
DEFAULT_MAX_BATCH = 8
DEFAULT_QUEUE_DELAY_US = 1000


@dataclass(frozen=True)
class ServedTensor:
    name: str
    dtype: str  # the manifest's dtype name: float32, float16 or int64
    dims: tuple[int, ...]  # after the batch axis when the graph is batched; -1 is dynamic
    reshape: tuple[int, ...] | None = None  # the graph's own dims, where they differ

    @property
    def data_type(self) -> str:
        return DATA_TYPES[self.dtype]


@dataclass(frozen=True)
class ServedGraph:
    name: str
    max_batch_size: int  # 0: not batched
    inputs: tuple[ServedTensor, ...]
    outputs: tuple[ServedTensor, ...]

    def wire_shape(self, tensor: ServedTensor, graph_shape: tuple[int, ...]) -> list[int]:
        """The shape a client sends or receives for an array of the graph's shape."""
        if self.max_batch_size > 0 and tensor.reshape is not None:
            return [graph_shape[0], *tensor.dims]
        return list(graph_shape)


@dataclass(frozen=True)
class TritonOptions:
    max_batch: int = DEFAULT_MAX_BATCH
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    cpu: bool = False  # KIND_CPU instances instead of one per GPU
    gpus: tuple[int, ...] = ()  # empty: every GPU
    tensorrt_cache: str | None = None  # TensorRT accelerator with its engine cache here


def read_manifest(model_dir: Path) -> dict:
    """The manifest of a model directory, with the four graphs and known dtypes."""
    path = model_dir / "manifest.json"
    if not model_dir.is_dir():
        raise ExportError(f"The model directory {model_dir} does not exist.")
    if not path.is_file():
        raise ExportError(f"{model_dir} has no manifest.json: it is not an exported model directory.")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as err:
        raise ExportError(f"{path} is not valid JSON ({err}).") from None
    if (manifest.get("format"), manifest.get("format_version")) != ("m3ddm-onnx", 1):
        raise ExportError(f"{path} is not an m3ddm-onnx version 1 manifest.")
    graphs = manifest.get("graphs", {})
    missing = [name for name in GRAPH_NAMES if name not in graphs]
    if missing:
        raise ExportError(f"{path} lists no {', '.join(missing)} graph.")
    for name in GRAPH_NAMES:
        entry = graphs[name]
        try:
            tensors = [(t["name"], t["dtype"], list(t["shape"])) for t in entry["inputs"] + entry["outputs"]]
            entry["file"]
        except (KeyError, TypeError):
            raise ExportError(f"The {name} entry of {path} lacks its file, inputs or outputs.") from None
        for tensor, dtype, _ in tensors:
            if dtype not in DATA_TYPES:
                raise ExportError(f"The {name} tensor {tensor} has the dtype {dtype}, "
                                  f"which the repository does not map (only {', '.join(DATA_TYPES)}).")
    return manifest


def served_graphs(manifest: dict, max_batch: int = DEFAULT_MAX_BATCH) -> list[ServedGraph]:
    """The four graphs as a client of the repository sees them (see the module docstring)."""
    return [served_graph(name, manifest["graphs"][name], 0 if name in UNBATCHED_GRAPHS else max_batch)
            for name in GRAPH_NAMES]


def served_graph(name: str, entry: dict, max_batch_size: int) -> ServedGraph:
    def served(tensor: dict) -> ServedTensor:
        shape = tensor["shape"]
        if max_batch_size > 0:
            if not shape or shape[0] != BATCH_AXIS:
                raise ExportError(f"The {name} tensor {tensor['name']} has no leading batch axis "
                                  f"(shape {shape}), so the graph cannot be batched.")
            shape = shape[1:]
        dims = tuple(-1 if isinstance(dim, str) else int(dim) for dim in shape)
        if max_batch_size > 0 and not dims:
            return ServedTensor(tensor["name"], tensor["dtype"], (1,), reshape=())
        return ServedTensor(tensor["name"], tensor["dtype"], dims)

    return ServedGraph(name, max_batch_size, tuple(map(served, entry["inputs"])),
                       tuple(map(served, entry["outputs"])))


def named_axis_sizes(canvas: int) -> dict[str, int]:
    """Sizes of the manifest's named axes (other than batch) at a square canvas."""
    latent = canvas // 8
    return {"height": latent, "width": latent, "image_height": canvas, "image_width": canvas,
            "tokens": GLOBAL_FRAMES * global_grid(latent) ** 2}


class Enum(str):
    """A protobuf enum value: written bare in the text format."""


def text_format(fields: dict, indent: int = 0) -> str:
    """Protobuf text format of nested dicts (messages), lists (repeated fields) and scalars."""
    pad = "  " * indent
    lines = []
    for key, value in fields.items():
        if isinstance(value, dict):
            lines += [f"{pad}{key} {{", text_format(value, indent + 1), f"{pad}}}"]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            items = [f"{pad}  {{\n{text_format(item, indent + 2)}\n{pad}  }}" for item in value]
            lines += [f"{pad}{key} [", ",\n".join(items), f"{pad}]"]
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: [ {', '.join(map(scalar_text, value))} ]" if value else f"{pad}{key}: [ ]")
        else:
            lines.append(f"{pad}{key}: {scalar_text(value)}")
    return "\n".join(lines)


def scalar_text(value) -> str:
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


def model_config(graph: ServedGraph, entry: dict, options: TritonOptions, canvas: int) -> dict:
    """The config.pbtxt of one graph, as nested dicts for `text_format`."""
    def tensor_config(tensor: ServedTensor) -> dict:
        entry = {"name": tensor.name, "data_type": Enum(tensor.data_type), "dims": list(tensor.dims)}
        if tensor.reshape is not None:
            entry["reshape"] = {"shape": list(tensor.reshape)}
        return entry

    config = {"name": graph.name, "backend": "onnxruntime", "max_batch_size": graph.max_batch_size,
              "input": [tensor_config(t) for t in graph.inputs],
              "output": [tensor_config(t) for t in graph.outputs]}
    if graph.max_batch_size > 0:
        config["dynamic_batching"] = {"max_queue_delay_microseconds": options.queue_delay_us}
    group = {"count": 1, "kind": Enum("KIND_CPU" if options.cpu else "KIND_GPU")}
    if options.gpus:
        group["gpus"] = list(options.gpus)
    config["instance_group"] = [group]
    if options.tensorrt_cache:
        config["optimization"] = {"execution_accelerators": {"gpu_execution_accelerator": [
            {"name": "tensorrt", "parameters": tensorrt_parameters(graph, entry, options, canvas)}]}}
    return config


def tensorrt_parameters(graph: ServedGraph, entry: dict, options: TritonOptions, canvas: int) -> list[dict]:
    """fp16 engines cached per graph, with one optimisation profile: batch 1..max at the manifest's canvas."""
    parameters = {"precision_mode": "FP16", "trt_engine_cache_enable": "1",
                  "trt_engine_cache_path": f"{options.tensorrt_cache.rstrip('/')}/{graph.name}"}
    sizes = named_axis_sizes(canvas)
    for profile, batch in (("min", 1), ("opt", graph.max_batch_size), ("max", graph.max_batch_size)):
        shapes = []
        for tensor in entry["inputs"]:  # the graph's own shapes, [B] for timestep
            dims = [batch if dim == BATCH_AXIS else sizes[dim] if isinstance(dim, str) else dim
                    for dim in tensor["shape"]]
            shapes.append(f"{tensor['name']}:{'x'.join(map(str, dims))}")
        parameters[f"trt_profile_{profile}_shapes"] = ",".join(shapes)
    return [{"key": key, "value": value} for key, value in parameters.items()]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checked_files(model_dir: Path, name: str, entry: dict) -> list[Path]:
    """The graph file and its external data file (if any), checked against the manifest's sha256."""
    files = [(entry["file"], entry.get("sha256"))]
    if entry.get("external_data"):
        files.append((entry["external_data"]["file"], entry["external_data"].get("sha256")))
    paths = []
    for file, digest in files:
        path = model_dir / file
        if not path.is_file():
            raise ExportError(f"The {name} graph's file {path} is missing.")
        if digest and sha256_of(path) != digest:
            raise ExportError(f"{path} does not match the sha256 in manifest.json.")
        paths.append(path)
    return paths


def place(source: Path, target: Path) -> str:
    """Hard-links `source` to `target`, or copies it where a link is impossible; says which."""
    try:
        os.link(source, target)
        return "linked"
    except OSError:
        shutil.copyfile(source, target)
        return "copied"


def write_triton_repo(model_dir: Path, out_dir: Path, options: TritonOptions, force: bool = False) -> list[str]:
    """Writes (or, with `force`, replaces) the four models of a repository; returns how each graph got there."""
    if options.max_batch < 1:
        raise ExportError(f"The max batch {options.max_batch} is not a positive number.")
    if options.tensorrt_cache and options.cpu:
        raise ExportError("TensorRT runs on GPUs: --tensorrt cannot be combined with --cpu.")
    manifest = read_manifest(model_dir)
    if out_dir.exists() and not force:
        raise ExportError(f"The output directory {out_dir} already exists; pass --force to overwrite it.")
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"The output path {out_dir} exists and is not a directory.")
    canvas = int(manifest.get("canvas", 256))
    graphs = served_graphs(manifest, options.max_batch)
    sources = {graph.name: checked_files(model_dir, graph.name, manifest["graphs"][graph.name]) for graph in graphs}
    placed = []
    for graph in graphs:
        graph_dir = out_dir / graph.name
        if graph_dir.exists():
            shutil.rmtree(graph_dir)
        (graph_dir / VERSION).mkdir(parents=True)
        graph_file, *data_files = sources[graph.name]
        placed.append(place(graph_file, graph_dir / VERSION / MODEL_FILE))
        for data in data_files:  # under its own name, which the graph refers to
            place(data, graph_dir / VERSION / data.name)
        config = model_config(graph, manifest["graphs"][graph.name], options, canvas)
        (graph_dir / "config.pbtxt").write_text(text_format(config) + "\n")
    return placed
