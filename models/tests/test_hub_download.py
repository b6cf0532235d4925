"""`--from-hub` downloading from a loopback server that answers as the hub's file endpoints
(hub_server.py, HF_ENDPOINT): the plan and progress bars, only the needed files fetched, an
interrupted download resumed with a Range request, and the bad cases (a missing file, a wrong
token, a repository without a checkpoint, too little disk) each ending in one sentence.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from conftest import MODELS_DIR, run_exporter
from hub_cache import M3DDM_PLUS_REPO, VAE_REPO, unet_files, vae_files
from hub_server import HubState, LoopbackHub

TOKEN = "hf_right_token"
UNET_WEIGHTS = "diffusion_pytorch_model.safetensors"
EXPORT = ("--canvas", "128", "--no-verify")
MIB = 1 << 20
CHUNK = 10 * MIB  # huggingface_hub writes a download to its .incomplete file in chunks of this size


@pytest.fixture
def hub(random_tiny_modules):
    # The VAE repository also holds a file the export does not need, which must not be fetched.
    vae = dict(vae_files(random_tiny_modules), **{"unet/diffusion_pytorch_model.safetensors": b"\0" * 4096})
    state = HubState(repos={M3DDM_PLUS_REPO: unet_files(random_tiny_modules, "root-safetensors"), VAE_REPO: vae},
                     licences={M3DDM_PLUS_REPO: "apache-2.0", VAE_REPO: "creativeml-openrail-m"}, token=TOKEN)
    with LoopbackHub(state) as server:
        yield server


def hub_env(server: LoopbackHub, home: Path, token: str = TOKEN) -> dict:
    env = dict(os.environ, HF_ENDPOINT=server.url, HF_HOME=str(home), HF_TOKEN=token)
    for name in ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_HUB_DISABLE_PROGRESS_BARS"):
        env.pop(name, None)
    return env


def one_sentence(run: subprocess.CompletedProcess) -> str:
    """The refusal line (after the printed plan, if any); no traceback."""
    assert "Traceback" not in run.stderr, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("m3ddm_export: ") and last.endswith("."), run.stderr
    return last


def run_on_a_terminal(args: list[str], env: dict) -> subprocess.CompletedProcess:
    """The exporter with its stderr on a pseudo-terminal, as a user sees it (progress bars show on a TTY)."""
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # tqdm fits its bar to the width
    child = subprocess.Popen([sys.executable, "-m", "m3ddm_export", *args], env=dict(env, PYTHONPATH=str(MODELS_DIR)),
                             stdout=subprocess.PIPE, stderr=terminal)
    os.close(terminal)
    received = bytearray()
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        received += chunk
    os.close(main)
    stdout = child.stdout.read().decode()
    child.wait(timeout=60)
    return subprocess.CompletedProcess(args, child.returncode, stdout, received.decode(errors="replace"))


def test_download_prints_the_plan_shows_progress_and_records_the_source(hub, tmp_path):
    out = tmp_path / "model"
    run = run_on_a_terminal(["--from-hub", "m3ddm-plus", "--out", str(out), *EXPORT], hub_env(hub, tmp_path / "hf"))
    assert run.returncode == 0, run.stderr
    plan = run.stderr[: run.stderr.index("to download:")]
    assert f"from {hub.url}" in plan and "licence: apache-2.0" in plan and "licence: creativeml-openrail-m" in plan
    assert f"{UNET_WEIGHTS}  1.9 MB" in plan and "vae/config.json" in plan
    assert f"downloading {M3DDM_PLUS_REPO}/{UNET_WEIGHTS} (1.9 MB)" in run.stderr
    assert UNET_WEIGHTS in run.stderr.split("downloading")[-1] and "100%" in run.stderr  # huggingface_hub's bars
    fetched = {key for key, _ in hub.state.ranges}
    assert fetched == {f"{M3DDM_PLUS_REPO}/config.json", f"{M3DDM_PLUS_REPO}/{UNET_WEIGHTS}",
                       f"{VAE_REPO}/vae/config.json", f"{VAE_REPO}/vae/{UNET_WEIGHTS}"}
    manifest = json.loads((out / "manifest.json").read_text())
    source = manifest["source"]["unet"]["hub"]
    assert source["endpoint"] == hub.url and source["repo"] == M3DDM_PLUS_REPO
    data = hub.state.repos[M3DDM_PLUS_REPO][UNET_WEIGHTS]
    assert source["files"][UNET_WEIGHTS] == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    # A second run finds everything in the cache: nothing is downloaded again.
    before = len(hub.state.ranges)
    again = run_exporter("--from-hub", "m3ddm-plus", "--out", str(out), "--force", *EXPORT,
                         env=hub_env(hub, tmp_path / "hf"))
    assert again.returncode == 0, again.stderr
    assert "to download: 0 B" in again.stderr and len(hub.state.ranges) == before


def test_an_interrupted_download_resumes_where_it_stopped(hub, random_tiny_modules, tmp_path):
    """The U-Net file is made larger than huggingface_hub's 10 MiB write chunk, and the server stalls
    after the first chunk: Ctrl-C then leaves that chunk in the cache, and the next run asks for the rest."""
    files = unet_files(random_tiny_modules, "root-safetensors", padding=12 * MIB)
    hub.state.repos[M3DDM_PLUS_REPO] = files
    key, size = f"{M3DDM_PLUS_REPO}/{UNET_WEIGHTS}", len(files[UNET_WEIGHTS])
    hub.state.stall_after[key] = CHUNK + 1000
    # huggingface_hub gives up a silent read after 10 s and resumes on its own: the stall here lasts
    # until the Ctrl-C however slowly the machine runs.
    env = dict(hub_env(hub, tmp_path / "hf"), PYTHONPATH=str(MODELS_DIR), HF_HUB_DOWNLOAD_TIMEOUT="300")
    args = [sys.executable, "-m", "m3ddm_export", "--from-hub", "m3ddm-plus", "--out", str(tmp_path / "m"), *EXPORT]
    # A test run in the background (`make test &`) inherits SIGINT ignored, and Python then keeps
    # ignoring it: the child gets the default disposition back, as a terminal gives it.
    child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    blobs = tmp_path / "hf" / "hub" / "models--MurakawaTakuya--M3DDM-Plus" / "blobs"
    deadline = time.monotonic() + 120
    while not any(p.name.endswith(".incomplete") and p.stat().st_size == CHUNK for p in blobs.glob("*")):
        assert child.poll() is None and time.monotonic() < deadline, "the download did not stall after a chunk"
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        f"m3ddm_export: Interrupted while downloading {UNET_WEIGHTS} of {M3DDM_PLUS_REPO}; what arrived stays "
        "in the cache, so the same command resumes the download.")
    assert not (tmp_path / "m").exists()

    hub.state.release.set()
    served_before = hub.state.served[key]
    run = run_exporter(*args[3:], env=env)
    assert run.returncode == 0, run.stderr
    assert (key, f"bytes={CHUNK}-") in hub.state.ranges
    assert hub.state.served[key] - served_before == size - CHUNK  # only the rest was sent again
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["source"]["unet"]["sha256"] == hashlib.sha256(files[UNET_WEIGHTS]).hexdigest()


def test_a_wrong_token_is_one_sentence(hub, tmp_path):
    run = run_exporter("--from-hub", "m3ddm-plus", "--out", str(tmp_path / "m"), *EXPORT,
                       env=hub_env(hub, tmp_path / "hf", token="hf_wrong_token"))
    assert run.returncode == 1
    assert one_sentence(run) == (f"m3ddm_export: The hub refused the token (HF_TOKEN or the saved login) for "
                                 f"{M3DDM_PLUS_REPO} (revision main) on {hub.url}: it is not valid.")
    assert hub.state.ranges == []


def test_a_listed_file_that_is_missing_is_one_sentence(hub, tmp_path):
    hub.state.missing.add(f"{VAE_REPO}/vae/{UNET_WEIGHTS}")
    run = run_exporter("--from-hub", "m3ddm-plus", "--out", str(tmp_path / "m"), *EXPORT,
                       env=hub_env(hub, tmp_path / "hf"))
    assert run.returncode == 1
    assert one_sentence(run) == (f"m3ddm_export: {VAE_REPO} has no file vae/{UNET_WEIGHTS} at revision main "
                                 f"on {hub.url}.")
    assert not (tmp_path / "m").exists()


def test_a_download_that_differs_from_the_listed_sha256_is_refused(hub, tmp_path):
    hub.state.corrupt.add(f"{M3DDM_PLUS_REPO}/{UNET_WEIGHTS}")
    run = run_exporter("--from-hub", "m3ddm-plus", "--out", str(tmp_path / "m"), *EXPORT,
                       env=hub_env(hub, tmp_path / "hf"))
    assert run.returncode == 1
    listed = hashlib.sha256(hub.state.repos[M3DDM_PLUS_REPO][UNET_WEIGHTS]).hexdigest()
    sentence = one_sentence(run)
    assert sentence.startswith(f"m3ddm_export: The downloaded {UNET_WEIGHTS} of {M3DDM_PLUS_REPO} has sha256 ")
    assert f"but the hub lists {listed}; delete " in sentence and sentence.endswith(" from the cache and run again.")
    assert not (tmp_path / "m").exists()


def test_a_repository_without_a_checkpoint_or_revision_is_one_sentence(hub, tmp_path):
    env = hub_env(hub, tmp_path / "hf")
    run = run_exporter("--from-hub", "m3ddm", "--unet-repo", VAE_REPO, "--out", str(tmp_path / "m"), *EXPORT,
                       env=env)
    assert run.returncode == 1
    assert "has no U-Net checkpoint" in one_sentence(run)
    run = run_exporter("--from-hub", "m3ddm-plus", "--revision", "v2", "--out", str(tmp_path / "m"), *EXPORT,
                       env=env)
    assert one_sentence(run) == f"m3ddm_export: The revision v2 of {M3DDM_PLUS_REPO} does not exist on {hub.url}."
    run = run_exporter("--from-hub", "m3ddm", "--out", str(tmp_path / "m"), *EXPORT, env=env)
    assert "m3ddm_export: The repository alimama-creative/M3DDM-Video-Outpainting (revision main) on " \
        f"{hub.url} was not found" in one_sentence(run)


def test_too_little_disk_is_refused_before_downloading(hub, tmp_path):
    hub.state.claimed_sizes[f"{M3DDM_PLUS_REPO}/{UNET_WEIGHTS}"] = 10**15  # 1 PB
    run = run_exporter("--from-hub", "m3ddm-plus", "--out", str(tmp_path / "m"), *EXPORT,
                       env=hub_env(hub, tmp_path / "hf"))
    assert run.returncode == 1
    assert one_sentence(run).startswith("m3ddm_export: Not enough free disk space: the download 1000000.0 GB in ")
    assert hub.state.ranges == []


def test_an_unreachable_hub_is_one_sentence(tmp_path):
    env = dict(os.environ, HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf"))
    env.pop("HF_HUB_OFFLINE", None)
    run = run_exporter("--from-hub", "m3ddm", "--out", str(tmp_path / "m"), env=env)
    assert run.returncode == 1
    assert "cannot be reached" in one_sentence(run)
