"""The U-Net graph as exported (fused attention, folded constants) against its plain-operator form.

The exported graph runs attention as ONNX Runtime's MultiHeadAttention (value heads of the
tiny model zero-padded) and has its input-independent parts folded; the reference is the
same module traced with MatMul/Softmax/MatMul attention. Both run at a shape other than
the traced one.
"""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from m3ddm_export.export import TRACE_SHAPE, save_graph, trace_graph
from m3ddm_export.graphs import GRAPH_BY_KEY, example_inputs, graph_modules
from m3ddm_export.simplify import constant_nodes

TOLERANCE = 1e-4  # max abs difference, fused vs plain operators
ATTENTIONS = 64  # 16 spatial-temporal transformers x (spatial self, cross, 2 temporal self)


@pytest.fixture(scope="module")
def unet_graphs(random_tiny_modules, tmp_path_factory):
    """The tiny U-Net exported twice: {"fused": dir, "plain": dir}."""
    unet, _, vae, _ = random_tiny_modules
    spec = GRAPH_BY_KEY["unet"]
    module = graph_modules(unet, vae)["unet"]
    batch, latent_hw = TRACE_SHAPE
    directories = {}
    for form, fused in (("fused", True), ("plain", False)):
        out = tmp_path_factory.mktemp(form)
        traced = out / "traced" / spec.file
        traced.parent.mkdir()
        inputs = example_inputs("unet", torch.float32, batch, latent_hw, torch.Generator().manual_seed(0))
        with torch.no_grad():
            trace_graph(module, spec, inputs, traced, fused_attention=fused)
        save_graph(traced, spec, out, "float32")
        directories[form] = out
    return directories


def op_counts(directory) -> collections.Counter:
    model = onnx.load(str(directory / "unet.onnx"))
    return collections.Counter(f"{node.domain}:{node.op_type}" if node.domain else node.op_type
                               for node in model.graph.node)


def test_fused_graph_uses_multihead_attention(unet_graphs):
    fused, plain = op_counts(unet_graphs["fused"]), op_counts(unet_graphs["plain"])
    assert fused["com.microsoft:MultiHeadAttention"] == ATTENTIONS and fused["Softmax"] == 0
    assert plain["com.microsoft:MultiHeadAttention"] == 0 and plain["Softmax"] == ATTENTIONS


def test_saved_graph_has_nothing_left_to_fold(unet_graphs):
    model = onnx.load(str(unet_graphs["fused"] / "unet.onnx"))
    assert constant_nodes(model.graph) == []
    assert not any(node.op_type == "Constant" for node in model.graph.node)


@pytest.mark.parametrize("batch,latent_hw", [(3, (12, 10)), (1, (16, 16))])
def test_fused_graph_matches_plain_operators(unet_graphs, batch, latent_hw):
    spec = GRAPH_BY_KEY["unet"]
    inputs = example_inputs("unet", torch.float32, batch, latent_hw, torch.Generator().manual_seed(5))
    feeds = {t.name: x.numpy() for t, x in zip(spec.inputs, inputs)}
    outputs = {}
    for form, directory in unet_graphs.items():
        session = ort.InferenceSession(str(directory / spec.file), providers=["CPUExecutionProvider"])
        outputs[form] = session.run(None, feeds)[0]
    assert outputs["fused"].shape == (batch, 4, 16, *latent_hw)
    assert np.max(np.abs(outputs["fused"] - outputs["plain"])) <= TOLERANCE
