"""A local Open Inference Protocol server for tests, and a client check of such servers.

`python -m serving --model DIR` (server.py) runs the real Triton of PyPI's nvidia-pytriton
on a model directory's graphs, on the CPU; `python -m serving.probe` (probe.py) calls a
server over gRPC and compares its answers with ONNX Runtime. Both run in the serving venv
(.venv-serving, `make serving-venv`) with `models/` on PYTHONPATH.
"""
