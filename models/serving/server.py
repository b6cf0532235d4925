"""Test server: the real Triton serving a model directory's graphs on the CPU, on loopback.

    python -m serving --model DIR [--grpc-port 8001] [--http-port 8000] [--host 127.0.0.1]
                      [--max-batch 8] [--stop-on-eof] [--start-timeout 120] [--log FILE]
                      [--triton-arg=--grpc-use-ssl=true ...]

Uses the tritonserver binary (Triton 2.51) and python backend bundled in PyPI's
nvidia-pytriton, not its Python API. Into a temporary directory it writes the model's Triton
repository exactly as `python -m m3ddm_export triton-repo --cpu` does, and a backend
directory where `onnxruntime` is the Python-based backend of ort_backend.py. Clients thus
see Triton's own gRPC and HTTP endpoints, model configs and metadata.

stdout gets two lines: `ready grpc=HOST:PORT http=HOST:PORT models=... (N.N s)` once every
model is loaded, and `stopped` after SIGTERM or SIGINT (or, with --stop-on-eof, the end of
stdin, so that a parent that dies takes the server with it). Triton's log goes to a file.
A failure is one sentence on stderr and exit status 1. `--triton-arg` passes more options to
tritonserver (TLS, mutual TLS, restricted protocols: the element's security tests use them).
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from m3ddm_export.errors import ExportError
from m3ddm_export.triton_repo import DEFAULT_MAX_BATCH, GRAPH_NAMES, TritonOptions, place, write_triton_repo

PROG = "serving"
EXIT_TIMEOUT_S = 5
PR_SET_PDEATHSIG = 1
BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")
STUB = "triton_python_backend_stub"


class ServingError(Exception):
    """A failure the command line reports as one sentence."""


class SentenceParser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"{PROG}: {message[0].upper()}{message[1:]} (see --help).", file=sys.stderr)
        sys.exit(2)


def port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number")
    return int(text)


def parser() -> argparse.ArgumentParser:
    p = SentenceParser(prog=f"python -m {PROG}", description="Serve a model directory's graphs with Triton on the "
                       "CPU (Open Inference Protocol over gRPC and HTTP), for tests.")
    p.add_argument("--model", type=Path, required=True, help="exported model directory (with manifest.json)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--grpc-port", type=port, default=8001, help="gRPC port (default 8001)")
    p.add_argument("--http-port", type=port, default=8000, help="HTTP port (default 8000)")
    p.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH,
                   help=f"max_batch_size of the batched models (default {DEFAULT_MAX_BATCH})")
    p.add_argument("--stop-on-eof", action="store_true", help="also stop when stdin reaches its end")
    p.add_argument("--start-timeout", type=float, default=120.0, help="seconds to wait for readiness (default 120)")
    p.add_argument("--log", type=Path, help="write Triton's log here (default: a file in the temporary directory)")
    p.add_argument("--triton-arg", action="append", default=[], metavar="ARG",
                   help="one more tritonserver option, e.g. --triton-arg=--grpc-use-ssl=true (repeatable)")
    return p


def triton_distribution() -> tuple[Path, Path]:
    """The tritonserver directory of nvidia-pytriton and its bundled libraries (without importing it)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServingError("nvidia-pytriton is not installed in this Python; "
                           "`make serving-venv` makes .venv-serving, which has it.")
    root = Path(list(spec.submodule_search_locations)[0])
    return root / "tritonserver", root.parent / "nvidia_pytriton.libs"


def libpython_dir() -> str:
    """Where this Python's shared libpython is: the backend stub embeds it and must get this very one."""
    libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    if not sysconfig.get_config_var("Py_ENABLE_SHARED") or not (Path(libdir) / soname).is_file():
        raise ServingError(f"This Python ({sys.executable}) has no shared libpython, which Triton's python backend "
                           "needs; make the serving venv from a Python built with --enable-shared (Debian's is).")
    return libdir


def prepare(work: Path, model: Path, max_batch: int, dist: Path) -> tuple[Path, Path]:
    """The model repository and the backend directory in `work`."""
    repo, backends = work / "repo", work / "backends"
    write_triton_repo(model, repo, TritonOptions(max_batch=max_batch, cpu=True))
    stub = dist / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}" / STUB
    if not stub.is_file():
        raise ServingError(f"nvidia-pytriton has no python backend stub for Python "
                           f"{sys.version_info.major}.{sys.version_info.minor}.")
    python_backend = backends / "python"
    python_backend.mkdir(parents=True)
    # Real files: Triton refuses a backend library whose path leads out of the backend directory.
    for source in [dist / "backends" / "python" / name for name in BACKEND_FILES] + [stub]:
        place(source, python_backend / source.name)
    (backends / "onnxruntime").mkdir()
    shutil.copyfile(Path(__file__).with_name("ort_backend.py"), backends / "onnxruntime" / "model.py")
    return repo, backends


def triton_command(dist: Path, repo: Path, backends: Path, args: argparse.Namespace) -> list[str]:
    return [str(dist / "bin" / "tritonserver"), f"--model-repository={repo}", f"--backend-directory={backends}",
            f"--grpc-address={args.host}", f"--grpc-port={args.grpc_port}",
            f"--http-address={args.host}", f"--http-port={args.http_port}",
            "--allow-metrics=false", "--disable-auto-complete-config", f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
            *args.triton_arg]


def triton_environment(libs: Path) -> dict:
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join(filter(None, [libpython_dir(), str(libs), env.get("LD_LIBRARY_PATH")]))
    # The stub's embedded Python finds this venv (numpy, onnxruntime) through `python3` on PATH.
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def die_with_parent() -> None:
    """In the child: SIGTERM when this server dies, even by SIGKILL."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def is_ready(host: str, http_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{http_port}/v2/health/ready", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def check_port_free(host: str, number: int) -> None:
    """Refuses a port that something listens on (whose readiness would be taken for Triton's)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, number))
        except OSError as err:
            raise ServingError(f"Cannot listen on {host}:{number} ({err.strerror}).") from None


def first_error(log: Path) -> str:
    """The first error line of Triton's log (its text after the `E... file:line]` prefix).

    Lines about CUDA are left out: Triton logs them as errors on every machine without a GPU.
    """
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    errors = [line for line in lines if line.startswith("E") and "cuda" not in line.lower()]
    return (errors or lines[-1:] or ["no log"])[0].split("] ", 1)[-1].strip().strip('"')


def watch_stdin(stop: threading.Event) -> None:
    while sys.stdin.buffer.read(65536):
        pass
    stop.set()


def wait_until_ready(triton: subprocess.Popen, args: argparse.Namespace, stop: threading.Event,
                     started: float, log_path: Path) -> bool:
    """True once Triton is ready (every model loaded); False when asked to stop first."""
    while not is_ready(args.host, args.http_port):
        if triton.poll() is not None:
            raise ServingError(f"Triton exited with status {triton.returncode} while starting: "
                               f"{first_error(log_path)}.")
        if time.monotonic() - started > args.start_timeout:
            raise ServingError(f"Triton was not ready after {args.start_timeout:.0f} s: {first_error(log_path)}.")
        if stop.wait(0.1):
            return False
    return True


def serve(args: argparse.Namespace, work: Path) -> int:
    started = time.monotonic()
    for number in (args.grpc_port, args.http_port):
        check_port_free(args.host, number)
    dist, libs = triton_distribution()
    env = triton_environment(libs)
    repo, backends = prepare(work, args.model, args.max_batch, dist)
    log_path = args.log or work / "tritonserver.log"
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with open(log_path, "wb") as log:
        triton = subprocess.Popen(triton_command(dist, repo, backends, args), env=env, stdin=subprocess.DEVNULL,
                                  stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    try:
        if wait_until_ready(triton, args, stop, started, log_path):
            print(f"ready grpc={args.host}:{args.grpc_port} http={args.host}:{args.http_port} "
                  f"models={','.join(GRAPH_NAMES)} ({time.monotonic() - started:.1f} s)", flush=True)
            if args.stop_on_eof:
                threading.Thread(target=watch_stdin, args=(stop,), daemon=True).start()
        while not stop.wait(0.2):
            if triton.poll() is not None:
                raise ServingError(f"Triton exited with status {triton.returncode}: {first_error(log_path)}.")
    finally:
        if triton.poll() is None:
            triton.terminate()
            try:
                triton.wait(timeout=EXIT_TIMEOUT_S + 10)
            except subprocess.TimeoutExpired:
                triton.kill()
                triton.wait()
    print("stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="m3ddm-serving-") as work:
            return serve(args, Path(work))
    except (ServingError, ExportError) as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"{PROG}: {err.strerror or err} ({err.filename or 'no file name'}).", file=sys.stderr)
        return 1
