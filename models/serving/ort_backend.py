"""`onnxruntime` as a Python-based Triton backend: the test server's stand-in for Triton's C++ one.

The tritonserver of PyPI's nvidia-pytriton has only the python backend, so the test server
installs this file as `backends/onnxruntime/model.py`; Triton then runs it (in its Python
backend stub) for every model whose config.pbtxt says `backend: "onnxruntime"`. Like the
C++ backend it loads `<version>/model.onnx` (or `<version>/model.onnx/model.onnx`) with ONNX
Runtime, on the CPU here, and gives inputs that have a `reshape` the graph's own shape.
Requests are run one at a time, as they come (dynamic batching still queues them).
"""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

MODEL_FILE = "model.onnx"


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        path = Path(args["model_repository"]) / args["model_version"] / (
            config.get("default_model_filename") or MODEL_FILE)
        if path.is_dir():
            path = path / MODEL_FILE
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.batched = int(config.get("max_batch_size", 0)) > 0
        self.inputs = [(tensor["name"], tensor["reshape"]["shape"] if "reshape" in tensor else None)
                       for tensor in config["input"]]
        self.outputs = [tensor["name"] for tensor in config["output"]]

    def execute(self, requests):
        return [self.infer(request) for request in requests]

    def infer(self, request):
        try:
            feeds = {}
            for name, graph_dims in self.inputs:
                array = pb_utils.get_input_tensor_by_name(request, name).as_numpy()
                if graph_dims is not None:
                    batch = [array.shape[0]] if self.batched else []
                    array = array.reshape(batch + [int(d) for d in graph_dims])
                feeds[name] = array
            results = self.session.run(self.outputs, feeds)
            tensors = [pb_utils.Tensor(name, np.ascontiguousarray(result))
                       for name, result in zip(self.outputs, results)]
            return pb_utils.InferenceResponse(output_tensors=tensors)
        except Exception as err:  # the client gets the reason; the model stays up
            return pb_utils.InferenceResponse(output_tensors=[],
                                              error=pb_utils.TritonError(f"{type(err).__name__}: {err}"))
