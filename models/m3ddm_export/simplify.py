"""Folds the parts of a traced graph that do not depend on its inputs into initializers.

The tracer leaves every literal as a `Constant` node and records weight arithmetic done
in `forward` (flattened convolution kernels, GroupNorm scales folded into projections,
zero-padded attention heads, the constant frame-position embeddings) as operators on the
weights. ONNX Runtime would fold them at every session start; folding them once here,
with ONNX's reference evaluator (numpy, so fp16 weights stay fp16), leaves a graph of
only the work that depends on the inputs.
"""

from __future__ import annotations

import onnx
import numpy as np
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

STANDARD_DOMAINS = ("", "ai.onnx")
NONDETERMINISTIC = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
                    "Bernoulli"}


def constant_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Standard nodes whose inputs are all initializers or outputs of such nodes (graph order is topological)."""
    known = {init.name for init in graph.initializer}
    foldable = []
    for node in graph.node:
        if (node.domain in STANDARD_DOMAINS and node.op_type not in NONDETERMINISTIC
                and all(not name or name in known for name in node.input)):
            foldable.append(node)
            known.update(node.output)
    return foldable


def fold_constants(model: onnx.ModelProto) -> int:
    """Replaces the input-independent nodes of `model` by initializers; returns how many nodes went."""
    graph = model.graph
    foldable = constant_nodes(graph)
    if not foldable:
        return 0
    folded_names = {name for node in foldable for name in node.output}
    foldable_ids = {id(node) for node in foldable}
    remaining = [node for node in graph.node if id(node) not in foldable_ids]
    needed = sorted({name for node in remaining for name in node.input if name in folded_names}
                    | {value.name for value in graph.output if value.name in folded_names})
    folded_inputs = {name for node in foldable for name in node.input}
    still_used = {name for node in remaining for name in node.input} | {value.name for value in graph.output}
    submodel = onnx.ModelProto(ir_version=model.ir_version, opset_import=model.opset_import)
    submodel.graph.name = "constants"
    submodel.graph.node.extend(foldable)
    submodel.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in needed)
    # The weights that only folded nodes read move over one at a time (the full model's
    # weights are gigabytes: never two copies of all of them at once).
    for index in reversed(range(len(graph.initializer))):
        init = graph.initializer[index]
        if init.name in folded_inputs:
            submodel.graph.initializer.append(init)
            if init.name not in still_used:
                del graph.initializer[index]
    values = ReferenceEvaluator(submodel).run(None, {}) if needed else []
    del submodel

    del graph.node[:]
    graph.node.extend(remaining)
    graph.initializer.extend(numpy_helper.from_array(np.asarray(value), name) for name, value in zip(needed, values))
    return len(foldable)
