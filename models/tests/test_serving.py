"""The test server (models/serving: real Triton on the CPU) on the tiny model, checked by the probe client.

Both run in the serving venv (.venv-serving, `make serving-venv`; $M3DDM_SERVING_PYTHON
names its python): these tests start the server on free loopback ports, run
`python -m serving.probe` against it (ServerReady, ModelMetadata and ModelInfer with
raw_input_contents for every graph, outputs against ONNX Runtime in-process) and read its
JSON results, then stop the server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import MODELS_DIR, PROJECT_ROOT, run_exporter

SERVING_PYTHON = Path(os.environ.get("M3DDM_SERVING_PYTHON", PROJECT_ROOT / ".venv-serving" / "bin" / "python"))
TINY = MODELS_DIR / "tiny"
START_TIMEOUT_S = 180
MIB = 1 << 20

pytestmark = pytest.mark.skipif(not SERVING_PYTHON.exists(), reason=(
    f"the serving venv is absent ({SERVING_PYTHON}); `make serving-venv` creates it"))


def serving_command(*args: str) -> list[str]:
    return [str(SERVING_PYTHON), "-m", *args]


def serving_env() -> dict:
    return dict(os.environ, PYTHONPATH=str(MODELS_DIR))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m serving` as the Rust tests would run it: wait for `ready`, stop with SIGTERM."""

    def __init__(self, log: Path):
        self.grpc_port = free_port()
        self.http_port = free_port()
        while self.http_port == self.grpc_port:
            self.http_port = free_port()
        self.url = f"127.0.0.1:{self.grpc_port}"
        self.log = log
        with open(log, "wb") as stderr:
            self.process = subprocess.Popen(
                serving_command("serving", "--model", str(TINY), "--grpc-port", str(self.grpc_port),
                                "--http-port", str(self.http_port), "--stop-on-eof"),
                env=serving_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
        self.ready_line = self.wait_for_ready()

    def wait_for_ready(self) -> str:
        lines = []
        reader = threading.Thread(target=lambda: lines.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_S)
        if not lines or not lines[0].startswith("ready "):
            self.process.kill()
            pytest.fail(f"the test server did not start: {self.log.read_text().strip() or 'no message'}")
        return lines[0]

    def stop(self) -> tuple[int, str, float]:
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=60)
        return self.process.returncode, out, time.monotonic() - started


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("serving") / "server.log")
    yield server
    if server.process.poll() is None:
        server.stop()


def probe(server: Server, json_path: Path, *args: str) -> dict:
    result = subprocess.run(serving_command("serving.probe", "--url", server.url, "--model", str(TINY),
                                            "--json", str(json_path), *args),
                            env=serving_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(json_path.read_text())


def served_metadata(entry: dict, batched: bool) -> dict:
    """ModelMetadata a manifest entry implies: Triton's [-1, ...] shapes, [B] sent as [B, 1]."""
    datatypes = {"float32": "FP32", "float16": "FP16", "int64": "INT64"}

    def tensors(items):
        described = []
        for tensor in items:
            shape = [-1 if isinstance(dim, str) else dim for dim in tensor["shape"]]
            if batched and len(shape) == 1:
                shape = [-1, 1]
            described.append({"name": tensor["name"], "datatype": datatypes[tensor["dtype"]], "shape": shape})
        return described
    return {"inputs": tensors(entry["inputs"]), "outputs": tensors(entry["outputs"])}


def test_ready_line_names_the_endpoints(server):
    assert server.ready_line.startswith(f"ready grpc={server.url} http=127.0.0.1:{server.http_port} "
                                        "models=unet,global_encoder,vae_encoder,vae_decoder (")


def test_every_graph_answers_like_onnx_runtime(server, tmp_path):
    results = probe(server, tmp_path / "probe.json")
    manifest = json.loads((TINY / "manifest.json").read_text())
    assert results["server_live"] and results["server_ready"]
    assert [r["graph"] for r in results["graphs"]] == ["unet", "global_encoder", "vae_encoder", "vae_decoder"]
    expected_shapes = {"unet": [[3, 4, 16, 16, 16]], "global_encoder": [[1, 576, 320]],
                       "vae_encoder": [[3, 4, 16, 16]], "vae_decoder": [[3, 3, 128, 128]]}
    for result in results["graphs"]:
        name = result["graph"]
        assert result["ready"] and result["ok"]
        assert result["metadata"] == served_metadata(manifest["graphs"][name], batched=name != "global_encoder")
        assert [o["shape"] for o in result["outputs"]] == expected_shapes[name]
        assert all(o["bit_exact"] and o["max_abs_diff"] == 0.0 for o in result["outputs"])


def test_messages_over_4_mib(server, tmp_path):
    """8 images of 256x256 in fp32 are 6 MiB: gRPC's default limit is 4 MiB each way."""
    results = probe(server, tmp_path / "probe.json", "--graphs", "vae_encoder,vae_decoder",
                    "--batch", "8", "--canvas", "256")
    encoder, decoder = results["graphs"]
    assert encoder["request_bytes"] > 6 * MIB and decoder["response_bytes"] > 6 * MIB
    assert encoder["outputs"][0]["shape"] == [8, 4, 32, 32] and decoder["outputs"][0]["shape"] == [8, 3, 256, 256]
    assert all(o["bit_exact"] for r in (encoder, decoder) for o in r["outputs"])


def test_stops_cleanly(server):
    code, out, seconds = server.stop()
    assert code == 0 and out.splitlines() == ["stopped"]
    assert seconds < 20


PARSE_CONFIGS = """
import json, sys
from pathlib import Path
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2
configs = {p.parent.name: text_format.Parse(p.read_text(), model_config_pb2.ModelConfig())
           for p in sorted(Path(sys.argv[1]).glob("*/config.pbtxt"))}
print(json.dumps({name: json_format.MessageToDict(c) for name, c in configs.items()}))
"""


def test_gpu_configs_follow_tritons_schema(tmp_path):
    """The GPU and TensorRT parts, which the CPU test server cannot load, against Triton's ModelConfig proto."""
    repo = tmp_path / "repo"
    written = run_exporter("triton-repo", "--model", str(TINY), "--out", str(repo), "--gpus", "0,1",
                           "--tensorrt", "/trt-cache")
    assert written.returncode == 0, written.stderr
    parsed = subprocess.run([str(SERVING_PYTHON), "-c", PARSE_CONFIGS, str(repo)], capture_output=True, text=True,
                            timeout=60)
    assert parsed.returncode == 0, parsed.stderr
    configs = json.loads(parsed.stdout)
    assert sorted(configs) == ["global_encoder", "unet", "vae_decoder", "vae_encoder"]
    unet = configs["unet"]
    assert unet["instanceGroup"] == [{"count": 1, "kind": "KIND_GPU", "gpus": [0, 1]}]
    [accelerator] = unet["optimization"]["executionAccelerators"]["gpuExecutionAccelerator"]
    assert accelerator["name"] == "tensorrt" and accelerator["parameters"]["precision_mode"] == "FP16"
    assert unet["input"][1]["reshape"] == {} and unet["input"][1]["dims"] == ["1"]  # proto3 JSON: int64 as strings
    assert "maxBatchSize" not in configs["global_encoder"]  # 0, the default


def test_refuses_a_missing_model_directory(tmp_path):
    result = subprocess.run(serving_command("serving", "--model", str(tmp_path / "nothing"), "--grpc-port",
                                            str(free_port()), "--http-port", str(free_port())),
                            env=serving_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "does not exist" in result.stderr


def test_refuses_a_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = subprocess.run(serving_command("serving", "--model", str(TINY), "--grpc-port", str(busy),
                                                "--http-port", str(free_port())),
                                env=serving_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == f"serving: Cannot listen on 127.0.0.1:{busy} (Address already in use)."
