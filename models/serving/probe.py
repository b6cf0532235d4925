"""Client check of an Open Inference Protocol server (gRPC) against ONNX Runtime in-process.

    python -m serving.probe --url HOST:PORT --model DIR [--graphs unet,vae_decoder] [--batch 3]
                            [--canvas N] [--tolerance 0] [--json FILE]

For each graph of the model directory: ServerReady, ModelReady and ModelMetadata (compared
with what the manifest implies, see m3ddm_export/triton_repo.py), then one ModelInfer on
seeded random inputs sent as `raw_input_contents`, as the element's client sends them; the
outputs (`raw_output_contents`) are compared with the graph run here by ONNX Runtime on the
CPU. Works against the test server and against a production Triton (there pass a tolerance:
GPU and fp16 results are not bit-exact). One line per graph; exit status 0 when all passed.
Built on the generated stubs of the protocol's grpc_service.proto that tritonclient ships.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
from tritonclient.grpc import service_pb2, service_pb2_grpc

from m3ddm_export.errors import ExportError
from m3ddm_export.triton_repo import (BATCH_AXIS, DATA_TYPES, GRAPH_NAMES, ServedGraph, named_axis_sizes,
                                      read_manifest, served_graphs)

PROG = "serving.probe"
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
CALL_TIMEOUT_S = 300
NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64}


def wire_datatype(dtype: str) -> str:
    """The protocol's datatype name of a manifest dtype (TYPE_FP32 -> FP32)."""
    return DATA_TYPES[dtype].removeprefix("TYPE_")


def expected_metadata(graph: ServedGraph) -> dict:
    def describe(tensors):
        batch = [-1] if graph.max_batch_size > 0 else []
        return [{"name": t.name, "datatype": wire_datatype(t.dtype), "shape": batch + list(t.dims)} for t in tensors]
    return {"inputs": describe(graph.inputs), "outputs": describe(graph.outputs)}


def random_inputs(entry: dict, batch: int, canvas: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Seeded inputs in the graph's own shapes: images in [-1, 1], other floats normal, integers in [0, 1000)."""
    sizes = {**named_axis_sizes(canvas), BATCH_AXIS: batch}
    arrays = []
    for tensor in entry["inputs"]:
        shape = [sizes[dim] if isinstance(dim, str) else dim for dim in tensor["shape"]]
        dtype = NUMPY_DTYPES[tensor["dtype"]]
        if dtype is np.int64:
            arrays.append(rng.integers(0, 1000, shape, dtype=np.int64))
        elif tensor["name"] == "images":
            arrays.append(rng.uniform(-1, 1, shape).astype(dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays


def infer(stub, graph: ServedGraph, arrays: list[np.ndarray]) -> tuple[list[np.ndarray], int, int, float]:
    """One ModelInfer with raw contents; the outputs, bytes sent and received, and seconds."""
    request = service_pb2.ModelInferRequest(model_name=graph.name, id=f"probe-{graph.name}")
    for tensor, array in zip(graph.inputs, arrays):
        request.inputs.add(name=tensor.name, datatype=wire_datatype(tensor.dtype),
                           shape=graph.wire_shape(tensor, array.shape))
        request.raw_input_contents.append(np.ascontiguousarray(array).tobytes())
    for tensor in graph.outputs:
        request.outputs.add(name=tensor.name)
    started = time.monotonic()
    response = stub.ModelInfer(request, timeout=CALL_TIMEOUT_S)
    seconds = time.monotonic() - started
    by_name = {out.name: (out, raw) for out, raw in zip(response.outputs, response.raw_output_contents)}
    outputs = []
    for tensor in graph.outputs:
        if tensor.name not in by_name:
            raise ProbeError(f"the {graph.name} response has no output {tensor.name}")
        out, raw = by_name[tensor.name]
        if out.datatype != wire_datatype(tensor.dtype):
            raise ProbeError(f"the {graph.name} output {tensor.name} came as {out.datatype}")
        outputs.append(np.frombuffer(raw, NUMPY_DTYPES[tensor.dtype]).reshape(list(out.shape)))
    return outputs, request.ByteSize(), response.ByteSize(), seconds


class ProbeError(Exception):
    """A check that failed in a way that stops the graph's probe."""


def metadata_of(stub, name: str) -> dict:
    reply = stub.ModelMetadata(service_pb2.ModelMetadataRequest(name=name), timeout=CALL_TIMEOUT_S)
    def describe(tensors):
        return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in tensors]
    return {"inputs": describe(reply.inputs), "outputs": describe(reply.outputs)}


def probe_graph(stub, model_dir: Path, manifest: dict, graph: ServedGraph, batch: int, canvas: int,
                tolerance: float) -> dict:
    entry = manifest["graphs"][graph.name]
    result = {"graph": graph.name, "ok": False}
    result["ready"] = stub.ModelReady(service_pb2.ModelReadyRequest(name=graph.name), timeout=CALL_TIMEOUT_S).ready
    result["metadata"] = metadata_of(stub, graph.name)
    result["metadata_ok"] = result["metadata"] == expected_metadata(graph)
    arrays = random_inputs(entry, batch, canvas, np.random.default_rng(0))
    served, result["request_bytes"], result["response_bytes"], result["seconds"] = infer(stub, graph, arrays)
    session = ort.InferenceSession(str(model_dir / entry["file"]), providers=["CPUExecutionProvider"])
    expected = session.run([t.name for t in graph.outputs], {t["name"]: a for t, a in zip(entry["inputs"], arrays)})
    result["outputs"] = []
    for tensor, got, want in zip(graph.outputs, served, expected):
        same_shape = got.shape == want.shape
        diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if same_shape else None
        result["outputs"].append({"name": tensor.name, "shape": list(got.shape), "expected_shape": list(want.shape),
                                  "bit_exact": same_shape and got.tobytes() == want.tobytes(),
                                  "max_abs_diff": diff})
    result["ok"] = bool(result["ready"] and result["metadata_ok"] and all(
        o["max_abs_diff"] is not None and o["max_abs_diff"] <= tolerance for o in result["outputs"]))
    return result


def summary(result: dict) -> str:
    if "error" in result:
        return f"{result['graph']}: FAILED, {result['error']}"
    problems = [] if result["ready"] else ["not ready"]
    if not result["metadata_ok"]:
        problems.append(f"metadata {result['metadata']}")
    for out in result["outputs"]:
        if out["max_abs_diff"] is None:
            problems.append(f"{out['name']} has the shape {out['shape']}, not {out['expected_shape']}")
    exact = all(o["bit_exact"] for o in result["outputs"])
    diff = max((o["max_abs_diff"] or 0.0) for o in result["outputs"])
    verdict = "ok" if result["ok"] else "FAILED"
    return (f"{result['graph']}: {verdict}, {'bit-exact' if exact else f'max abs diff {diff:.3g}'}, "
            f"{result['request_bytes'] / 1e6:.2f} MB in, {result['response_bytes'] / 1e6:.2f} MB out, "
            f"{result['seconds']:.2f} s" + "".join(f"; {p}" for p in problems))


def graph_list(text: str) -> list[str]:
    names = text.split(",")
    unknown = [name for name in names if name not in GRAPH_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"{', '.join(unknown)} is not one of {', '.join(GRAPH_NAMES)}")
    return names


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="the server's gRPC address, HOST:PORT")
    p.add_argument("--model", type=Path, required=True, help="the model directory the server serves")
    p.add_argument("--graphs", type=graph_list, default=list(GRAPH_NAMES), help="comma-separated (default: all four)")
    p.add_argument("--batch", type=int, default=3, help="batch of the batched graphs (default 3, the U-Net's)")
    p.add_argument("--canvas", type=int, help="canvas of the inputs (default: the manifest's)")
    p.add_argument("--tolerance", type=float, default=0.0, help="largest accepted max abs difference (default 0)")
    p.add_argument("--json", type=Path, help="write the results here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        manifest = read_manifest(args.model)
    except ExportError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 1
    canvas = args.canvas or int(manifest.get("canvas", 256))
    options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
               ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
    results = []
    with grpc.insecure_channel(args.url, options=options) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        try:
            live = stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=CALL_TIMEOUT_S).live
            ready = stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=CALL_TIMEOUT_S).ready
        except grpc.RpcError as err:
            print(f"{PROG}: The server at {args.url} did not answer ({err.code().name}: {err.details()}).",
                  file=sys.stderr)
            return 1
        print(f"server {args.url}: live {live}, ready {ready}")
        for graph in served_graphs(manifest):
            if graph.name not in args.graphs:
                continue
            try:
                result = probe_graph(stub, args.model, manifest, graph, args.batch, canvas, args.tolerance)
            except grpc.RpcError as err:
                result = {"graph": graph.name, "ok": False, "error": f"{err.code().name}: {err.details()}"}
            except ProbeError as err:
                result = {"graph": graph.name, "ok": False, "error": str(err)}
            results.append(result)
            print(summary(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"server_live": live, "server_ready": ready, "canvas": canvas,
                                         "batch": args.batch, "graphs": results}, indent=2) + "\n")
    return 0 if live and ready and all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
