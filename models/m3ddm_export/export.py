"""Writes a model directory: the four ONNX graphs and manifest.json (DESIGN.md §1).

Graphs are traced with the classic exporter (opset 17) at one shape and then checked in
ONNX Runtime at another shape against PyTorch, because the tracer turns shape logic it
cannot see into constants. The U-Net's attention is ONNX Runtime's `com.microsoft`
MultiHeadAttention (CONTRIB_OPS); what does not depend on the inputs is folded into
initializers (simplify.py). Graphs larger than 2 GB keep their weights in one external
data file next to the graph (`<graph>.onnx.data`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from .checkpoint import Source, sha256_of
from .config import OFFICIAL_STRIDES, UNetConfig
from .errors import ExportError
from .graphs import GRAPHS, GraphSpec, example_inputs, graph_modules
from .layers import unfused_attention
from .simplify import fold_constants

OPSET = 17
# Operators outside the ONNX standard that the graphs use (kernels in ONNX Runtime's CPU
# and CUDA execution providers, fp32 and fp16).
CONTRIB_OPS = ("com.microsoft:MultiHeadAttention",)
FORMAT = "m3ddm-onnx"
FORMAT_VERSION = 1
LATENT_SCALE = 0.18215
SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
}
EXTERNAL_DATA_THRESHOLD = 1_800_000_000  # bytes of weights; the protobuf limit is 2 GiB
TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
DTYPE_NAMES = {"fp32": "float32", "fp16": "float16"}
ONNX_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16",
               onnx.TensorProto.INT64: "int64"}
# Shapes used to trace (batch, latent h, w) and, different in every axis, to verify.
# The U-Net's cost grows fast with the latent size (cross-attention over 16 frames), so
# both stay small.
TRACE_SHAPE = (2, (8, 8))
VERIFY_SHAPE = (1, (12, 10))
# Max abs error of a graph against fp32 PyTorch at VERIFY_SHAPE, relative to max(1, max |output|).
VERIFY_TOLERANCE = {"fp32": 1e-3, "fp16": 3e-2}
OUTPUT_FILES = tuple(g.file for g in GRAPHS) + tuple(g.file + ".data" for g in GRAPHS) + ("manifest.json",)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def trace_graph(module: nn.Module, spec: GraphSpec, inputs: tuple, path: Path, fused_attention: bool = True) -> None:
    """Traces `module` into an ONNX file.

    Attention becomes ONNX Runtime's `com.microsoft` MultiHeadAttention, or with
    `fused_attention=False` plain MatMul/Softmax/MatMul (the reference it is tested against).
    """
    with warnings.catch_warnings(), (nullcontext() if fused_attention else unfused_attention()):
        warnings.simplefilter("ignore")  # tracer warnings about constants are checked by verify_graph
        torch.onnx.export(
            module, inputs, str(path), opset_version=OPSET, dynamo=False, do_constant_folding=True,
            input_names=[t.name for t in spec.inputs], output_names=[t.name for t in spec.outputs],
            dynamic_axes=spec.dynamic_axes())


def graph_io(model: onnx.ModelProto) -> tuple[list[dict], list[dict]]:
    """Names, dtypes and shapes of a graph's inputs and outputs, dynamic axes by name."""

    def describe(value) -> dict:
        tensor = value.type.tensor_type
        shape = [d.dim_param if d.dim_param else d.dim_value for d in tensor.shape.dim]
        return {"name": value.name, "dtype": ONNX_DTYPES.get(tensor.elem_type, str(tensor.elem_type)), "shape": shape}

    initializers = {i.name for i in model.graph.initializer}
    inputs = [describe(v) for v in model.graph.input if v.name not in initializers]
    return inputs, [describe(v) for v in model.graph.output]


def pin_io_shapes(model: onnx.ModelProto, spec: GraphSpec) -> None:
    """Names every graph input/output axis as the spec does.

    The tracer leaves some fixed sizes symbolic (e.g. an output that comes out of a
    Reshape); those get the spec's size. A dynamic axis of the spec that was traced as a
    fixed size, or a fixed size that differs, is an error.
    """
    by_name = {t.name: t for t in spec.inputs + spec.outputs}
    for value in list(model.graph.input) + list(model.graph.output):
        if value.name not in by_name:
            continue
        dims = value.type.tensor_type.shape.dim
        wanted = by_name[value.name].shape
        if len(dims) != len(wanted):
            raise ExportError(f"The traced {spec.key} graph's {value.name} has {len(dims)} axes, not {len(wanted)}.")
        for dim, size in zip(dims, wanted):
            traced_fixed = dim.HasField("dim_value")
            if isinstance(size, str):
                if traced_fixed:
                    raise ExportError(f"The traced {spec.key} graph fixed the {size} axis of {value.name}.")
                dim.dim_param = size
            else:
                if traced_fixed and dim.dim_value != size:
                    raise ExportError(f"The traced {spec.key} graph's {value.name} has size {dim.dim_value} "
                                      f"where {size} is expected.")
                dim.dim_value = size


def shorten_value_names(model: onnx.ModelProto) -> None:
    """Renames intermediate values to short ids (about half of a small graph's bytes are these names).

    Graph inputs, outputs and initializers keep their names, and nodes keep theirs (ONNX
    Runtime names the node in its errors).
    """
    graph = model.graph
    kept = {v.name for v in graph.input} | {v.name for v in graph.output} | {i.name for i in graph.initializer}
    renamed: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in kept:
            return name
        return renamed.setdefault(name, f"v{len(renamed)}")

    for node in graph.node:
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    for value in graph.value_info:
        value.name = short(value.name)


def save_graph(traced: Path, spec: GraphSpec, out_dir: Path, float_dtype: str) -> dict:
    """Re-saves a traced graph into `out_dir` (external data when large) and returns its manifest entry."""
    model = onnx.load(str(traced))
    pin_io_shapes(model, spec)
    fold_constants(model)
    shorten_value_names(model)
    expected_inputs = [t.resolved(float_dtype) for t in spec.inputs]
    expected_outputs = [t.resolved(float_dtype) for t in spec.outputs]
    inputs, outputs = graph_io(model)
    if inputs != expected_inputs or outputs != expected_outputs:
        raise ExportError(
            f"The traced {spec.key} graph has inputs {inputs} and outputs {outputs}, not the expected "
            f"{expected_inputs} and {expected_outputs}.")
    weight_bytes = sum(len(t.raw_data) for t in model.graph.initializer)
    target = out_dir / spec.file
    entry = {"file": spec.file}
    if weight_bytes > EXTERNAL_DATA_THRESHOLD:
        data_name = spec.file + ".data"
        onnx.save_model(model, str(target), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=1024)
        entry["sha256"] = sha256_of(target)
        entry["external_data"] = {"file": data_name, "sha256": sha256_of(out_dir / data_name)}
    else:
        onnx.save_model(model, str(target))
        entry["sha256"] = sha256_of(target)
    entry["inputs"], entry["outputs"] = expected_inputs, expected_outputs
    return entry


def ort_session(path: Path):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@torch.no_grad()
def reference_outputs(modules: dict[str, nn.Module], generator: torch.Generator) -> dict:
    """fp32 PyTorch inputs and outputs of every graph at VERIFY_SHAPE, taken before any cast to fp16."""
    batch, latent_hw = VERIFY_SHAPE
    references = {}
    for spec in GRAPHS:
        inputs = example_inputs(spec.key, torch.float32, batch, latent_hw, generator)
        references[spec.key] = (inputs, modules[spec.key](*inputs).float().numpy())
    return references


def verify_graph(spec: GraphSpec, path: Path, precision: str, reference: tuple) -> float:
    """Runs a saved graph in ONNX Runtime on the reference inputs; returns its max abs error."""
    inputs, expected = reference
    dtype = TORCH_DTYPES[precision]
    feeds = {t.name: (x.to(dtype) if x.is_floating_point() else x).numpy() for t, x in zip(spec.inputs, inputs)}
    got = ort_session(path).run(None, feeds)[0].astype(np.float32)
    if got.shape != expected.shape:
        raise ExportError(f"The exported {spec.key} graph gives shape {list(got.shape)} where PyTorch gives "
                          f"{list(expected.shape)}: a dynamic axis was traced as a constant.")
    error = float(np.max(np.abs(got - expected)))
    if not error <= VERIFY_TOLERANCE[precision] * max(1.0, float(np.max(np.abs(expected)))):
        raise ExportError(f"The exported {spec.key} graph differs from PyTorch by {error:.3g} at a second shape.")
    return error


def prepare_out_dir(out_dir: Path, force: bool) -> bool:
    """Creates the directory or clears the exporter's files from it; True when it was created."""
    existed = out_dir.exists()
    if existed and not force:
        raise ExportError(f"The output directory {out_dir} already exists; pass --force to overwrite it.")
    if existed and not out_dir.is_dir():
        raise ExportError(f"The output path {out_dir} exists and is not a directory.")
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_outputs(out_dir)
    return not existed


def remove_outputs(out_dir: Path) -> None:
    for name in OUTPUT_FILES:
        (out_dir / name).unlink(missing_ok=True)


def export_model(unet, unet_conf: UNetConfig, vae: nn.Module, vae_config: dict, out_dir: Path, *,
                 precision: str, canvas: int, force: bool, sources: dict, verify: bool = True,
                 strides: tuple[int, ...] = OFFICIAL_STRIDES) -> dict:
    """Exports the four graphs and the manifest into `out_dir`; returns the manifest."""
    if precision not in TORCH_DTYPES:
        raise ExportError(f"The precision {precision!r} is not one of fp32, fp16.")
    if canvas < 64 or canvas % 8 != 0:
        raise ExportError(f"The canvas {canvas} is not a multiple of 8 of at least 64.")
    created = prepare_out_dir(out_dir, force)
    try:
        return write_model_dir(unet, unet_conf, vae, vae_config, out_dir, precision, canvas, strides, sources,
                               verify)
    except BaseException:
        # No half-written model directory: the graphs go, and the directory if this run made it.
        remove_outputs(out_dir)
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise


def write_model_dir(unet, unet_conf: UNetConfig, vae: nn.Module, vae_config: dict, out_dir: Path, precision: str,
                    canvas: int, strides: tuple[int, ...], sources: dict, verify: bool) -> dict:
    dtype, float_name = TORCH_DTYPES[precision], DTYPE_NAMES[precision]
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        # fp16 graphs are checked against fp32 PyTorch (PyTorch's fp16 kernels are slow on CPUs).
        references = reference_outputs(graph_modules(unet.float(), vae.float()), generator) if verify else {}
    unet, vae = unet.to(dtype).eval(), vae.to(dtype).eval()
    modules = graph_modules(unet, vae)
    graphs = {}
    with tempfile.TemporaryDirectory(prefix="m3ddm-export-") as scratch, torch.no_grad():
        for spec in GRAPHS:
            log(f"exporting {spec.file} ({float_name})")
            traced = Path(scratch) / spec.key / spec.file
            traced.parent.mkdir()
            batch, latent_hw = TRACE_SHAPE
            trace_graph(modules[spec.key], spec, example_inputs(spec.key, dtype, batch, latent_hw, generator), traced)
            graphs[spec.key] = save_graph(traced, spec, out_dir, float_name)
            shutil.rmtree(traced.parent)
            if verify:
                error = verify_graph(spec, out_dir / spec.file, precision, references[spec.key])
                log(f"  checked in ONNX Runtime at a second shape: max abs error {error:.2e}")
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "precision": precision, "canvas": canvas, "strides": list(strides), "latent_scale": LATENT_SCALE,
        "unet_config": unet_conf.to_json(), "vae_config": dict(vae_config),
        "scheduler_config": dict(SCHEDULER_CONFIG),
        "graphs": graphs,
        "source": sources,
        "exporter": {"opset": OPSET, "contrib_ops": list(CONTRIB_OPS),
                     "torch": torch.__version__, "onnx": onnx.__version__},
    }
    write_json(out_dir / "manifest.json", manifest)
    return manifest


def write_json(path: Path, value: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, path)


def source_entry(unet: Source | None, vae: Source | None, seed: int | None) -> dict:
    return {"unet": unet.to_json() if unet else None, "vae": vae.to_json() if vae else None,
            "random_tiny_seed": seed}
