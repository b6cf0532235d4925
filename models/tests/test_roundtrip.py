"""Exported graphs against the PyTorch modules on random inputs, at shapes other than the traced one.

The tracer turns shape logic it cannot see into constants, so every dynamic axis of the
contract (batch, latent height/width, token count) is exercised at two values here.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from m3ddm_export import export as export_module
from m3ddm_export.export import export_model, save_graph, source_entry, trace_graph
from m3ddm_export.graphs import GRAPH_BY_KEY, GRAPHS, example_inputs, graph_modules
from m3ddm_export.tiny import TINY_CANVAS

from conftest import MODELS_DIR, run_exporter

TOLERANCE = 1e-4  # fp32 graph vs fp32 PyTorch, relative to max(1, |output|)
# Every value of each dynamic axis appears (batch 3 and 4, latents 16x16 and 32x32), each
# at a shape other than the traced one (batch 2, 8x8); 32x32 is costly, so it runs once.
SHAPES = [(4, (16, 16)), (3, (32, 32))]


@pytest.fixture(scope="module")
def tiny_export(random_tiny_modules, tmp_path_factory):
    unet, conf, vae, vae_config = random_tiny_modules
    out = tmp_path_factory.mktemp("tiny-export") / "model"
    export_model(unet, conf, vae, vae_config, out, precision="fp32", canvas=TINY_CANVAS, force=False,
                 sources=source_entry(None, None, 0), verify=True)
    return out


def compare(directory, modules, key, batch, latent_hw, seed=0):
    spec = GRAPH_BY_KEY[key]
    inputs = example_inputs(key, torch.float32, batch, latent_hw, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = modules[key](*inputs).numpy()
    session = ort.InferenceSession(str(directory / spec.file), providers=["CPUExecutionProvider"])
    got = session.run(None, {t.name: x.numpy() for t, x in zip(spec.inputs, inputs)})[0]
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= TOLERANCE * max(1.0, float(np.max(np.abs(expected))))
    return got


@pytest.mark.parametrize("batch,latent_hw", SHAPES)
def test_unet_graph_matches_module(tiny_export, random_tiny_modules, batch, latent_hw):
    unet, _, vae, _ = random_tiny_modules
    out = compare(tiny_export, graph_modules(unet, vae), "unet", batch, latent_hw)
    assert out.shape == (batch, 4, 16, *latent_hw)


@pytest.mark.parametrize("latent_hw", [(16, 16), (32, 32), (12, 20)])
def test_global_encoder_graph_matches_module(tiny_export, random_tiny_modules, latent_hw):
    unet, _, vae, _ = random_tiny_modules
    context = compare(tiny_export, graph_modules(unet, vae), "global_encoder", 16, latent_hw)
    grid = [(side + 1) // 2 - 2 for side in latent_hw]
    assert context.shape == (1, 16 * grid[0] * grid[1], 320)


def test_unet_graph_at_odd_latent_size(tiny_export, random_tiny_modules):
    """Latent sizes that are not multiples of 8 take the official upsample-to-skip-size path."""
    unet, _, vae, _ = random_tiny_modules
    compare(tiny_export, graph_modules(unet, vae), "unet", 1, (12, 20))


@pytest.mark.parametrize("key", ["vae_encoder", "vae_decoder"])
@pytest.mark.parametrize("batch,latent_hw", [(1, (16, 16)), (3, (32, 32))])
def test_vae_graphs_match_module(tiny_export, random_tiny_modules, key, batch, latent_hw):
    unet, _, vae, _ = random_tiny_modules
    compare(tiny_export, graph_modules(unet, vae), key, batch, latent_hw)


def test_second_shape_check_rejects_wrong_graphs(tiny_export, random_tiny_modules):
    """The exporter's own check refuses a graph whose output or shape differs from PyTorch."""
    unet, _, vae, _ = random_tiny_modules
    spec = GRAPH_BY_KEY["vae_decoder"]
    references = export_module.reference_outputs(graph_modules(unet, vae), torch.Generator().manual_seed(0))
    inputs, expected = references[spec.key]
    path = tiny_export / spec.file
    assert export_module.verify_graph(spec, path, "fp32", (inputs, expected)) < 1e-4
    with pytest.raises(export_module.ExportError, match="differs from PyTorch"):
        export_module.verify_graph(spec, path, "fp32", (inputs, expected + 0.01))
    with pytest.raises(export_module.ExportError, match="traced as a constant"):
        export_module.verify_graph(spec, path, "fp32", (inputs, expected[:, :, :-8]))


def test_manifest_describes_graphs(tiny_export):
    manifest = json.loads((tiny_export / "manifest.json").read_text())
    assert manifest["format"] == "m3ddm-onnx" and manifest["format_version"] == 1
    assert manifest["latent_scale"] == 0.18215 and manifest["canvas"] == TINY_CANVAS
    assert manifest["scheduler_config"]["skip_prk_steps"] is True
    assert manifest["source"] == {"unet": None, "vae": None, "random_tiny_seed": 0}
    assert set(manifest["graphs"]) == {spec.key for spec in GRAPHS}
    for spec in GRAPHS:
        entry = manifest["graphs"][spec.key]
        path = tiny_export / entry["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        model = onnx.load(str(path))
        assert model.opset_import[0].version == 17
        assert [i.name for i in model.graph.input] == [t["name"] for t in entry["inputs"]]
        assert [o.name for o in model.graph.output] == [t["name"] for t in entry["outputs"]]
        for value, described in zip(list(model.graph.input) + list(model.graph.output),
                                    entry["inputs"] + entry["outputs"]):
            dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
            assert dims == described["shape"]
    unet_inputs = {t["name"]: t for t in manifest["graphs"]["unet"]["inputs"]}
    assert unet_inputs["sample"]["shape"] == ["batch", 9, 16, "height", "width"]
    assert unet_inputs["timestep"]["dtype"] == "int64" and unet_inputs["context"]["dtype"] == "float32"


def test_committed_tiny_model_is_current(random_tiny_modules):
    """models/tiny is what `--random-tiny 0` makes from this code: hashes hold and outputs match."""
    directory = MODELS_DIR / "tiny"
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["source"]["random_tiny_seed"] == 0 and manifest["precision"] == "fp32"
    assert manifest["canvas"] == TINY_CANVAS
    for entry in manifest["graphs"].values():
        assert hashlib.sha256((directory / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
    unet, _, vae, _ = random_tiny_modules
    modules = graph_modules(unet, vae)
    for key in ("unet", "global_encoder", "vae_encoder", "vae_decoder"):
        compare(directory, modules, key, 3, (16, 16), seed=7)
    total = sum(p.stat().st_size for p in directory.iterdir())
    assert total < 10_000_000


def test_fp16_export_over_an_existing_directory(random_tiny_modules, tmp_path):
    """`--precision fp16 --force`: float16 graphs close to fp32 PyTorch; user files are kept."""
    out = tmp_path / "fp16"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    (out / "unet.onnx").write_text("stale")
    result = run_exporter("--random-tiny", "0", "--out", str(out), "--precision", "fp16", "--force", "--no-verify")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"wrote {out} (fp16, canvas 128, strides 15,5,1)\n"
    assert (out / "keep.txt").read_text() == "user file"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "fp16" and manifest["source"]["random_tiny_seed"] == 0
    unet_io = manifest["graphs"]["unet"]["inputs"] + manifest["graphs"]["unet"]["outputs"]
    assert [t["dtype"] for t in unet_io] == ["float16", "int64", "int64", "float16", "float16"]
    unet, _, vae, _ = random_tiny_modules
    modules = graph_modules(unet, vae)
    for spec in GRAPHS:
        inputs = example_inputs(spec.key, torch.float32, 3, (16, 16), torch.Generator().manual_seed(3))
        with torch.no_grad():
            expected = modules[spec.key](*inputs).numpy()
        feeds = {t.name: (x.numpy().astype(np.float16) if x.is_floating_point() else x.numpy())
                 for t, x in zip(spec.inputs, inputs)}
        session = ort.InferenceSession(str(out / spec.file), providers=["CPUExecutionProvider"])
        got = session.run(None, feeds)[0]
        assert got.dtype == np.float16
        error = np.max(np.abs(got.astype(np.float32) - expected))
        assert error <= 2e-2 * max(1.0, float(np.max(np.abs(expected)))), spec.key


def test_large_graphs_use_one_external_data_file(random_tiny_modules, tmp_path, monkeypatch):
    """Graphs over the protobuf limit keep weights in <graph>.onnx.data, hashed in the manifest entry."""
    monkeypatch.setattr(export_module, "EXTERNAL_DATA_THRESHOLD", 0)
    unet, _, vae, _ = random_tiny_modules
    spec = GRAPH_BY_KEY["vae_decoder"]
    traced = tmp_path / "traced.onnx"
    with torch.no_grad():
        trace_graph(graph_modules(unet, vae)[spec.key], spec,
                    example_inputs(spec.key, torch.float32, 2, (8, 8), torch.Generator().manual_seed(0)), traced)
    out = tmp_path / "out"
    out.mkdir()
    entry = save_graph(traced, spec, out, "float32")
    assert entry["external_data"]["file"] == "vae_decoder.onnx.data"
    assert sorted(p.name for p in out.iterdir()) == ["vae_decoder.onnx", "vae_decoder.onnx.data"]
    assert hashlib.sha256((out / "vae_decoder.onnx.data").read_bytes()).hexdigest() == entry["external_data"]["sha256"]
    assert hashlib.sha256((out / "vae_decoder.onnx").read_bytes()).hexdigest() == entry["sha256"]
    assert (out / "vae_decoder.onnx").stat().st_size < (out / "vae_decoder.onnx.data").stat().st_size
    compare(out, graph_modules(unet, vae), "vae_decoder", 3, (16, 16))
