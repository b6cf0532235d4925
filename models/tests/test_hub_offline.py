"""`--from-hub` and `make model` against a Hugging Face cache on disk (HF_HUB_OFFLINE=1).

The cache is built in the hub's own layout (hub_cache.py) with a tiny fp16 checkpoint in each
published layout; huggingface_hub's own code resolves the files. Each made directory is then
run in the element (gst-launch-1.0), and its manifest must name the repository, the commit
and the hashes of the files that were read.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import PROJECT_ROOT, run_exporter
from hub_cache import M3DDM_PLUS_REPO, M3DDM_REPO, VAE_REPO, add_to_cache, unet_files, vae_files

FRAMES = 18  # more than one 16-frame window
SOURCE_W, SOURCE_H = 96, 128


@pytest.fixture(scope="module")
def hub_home(random_tiny_modules, tmp_path_factory) -> tuple[Path, dict]:
    """HF_HOME with the three repositories in its cache; their files by repository."""
    home = tmp_path_factory.mktemp("hf-home")
    repos = {M3DDM_REPO: unet_files(random_tiny_modules, "root-bin"),
             M3DDM_PLUS_REPO: unet_files(random_tiny_modules, "root-safetensors"),
             "someone/m3ddm-in-unet-folder": unet_files(random_tiny_modules, "unet-fp16"),
             VAE_REPO: vae_files(random_tiny_modules)}
    commits = {repo: add_to_cache(home / "hub", repo, files) for repo, files in repos.items()}
    return home, {"files": repos, "commits": commits}


def offline_env(home: Path, models_dir: Path) -> dict:
    env = dict(os.environ, HF_HOME=str(home), HF_HUB_OFFLINE="1", M3DDM_MODELS_DIR=str(models_dir))
    env.pop("HF_HUB_CACHE", None)
    env.pop("HF_ENDPOINT", None)
    return env


def gst_launch_env(models_dir: Path | None = None) -> dict:
    env = dict(os.environ)
    env.setdefault("GST_PLUGIN_PATH", str(PROJECT_ROOT / "target" / "release"))
    if models_dir is not None:
        env["M3DDM_MODELS_DIR"] = str(models_dir)
    return env


def run_in_element(model: str, tmp_path: Path, models_dir: Path | None = None) -> np.ndarray:
    """The frames the element makes of a test pattern with `model-path=model`, one step."""
    out = tmp_path / "out.rgb"
    env = gst_launch_env(models_dir)
    pipeline = (f"videotestsrc num-buffers={FRAMES} pattern=ball "
                f"! video/x-raw,format=RGB,width={SOURCE_W},height={SOURCE_H},framerate=30/1 "
                f"! m3ddmoutpaint aspect=1/1 steps=1 model-path={model} "
                f"! video/x-raw,format=RGB ! filesink location={out}")
    run = subprocess.run(["gst-launch-1.0", "-q", *pipeline.split()], capture_output=True, text=True, env=env,
                         timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    frame_bytes = SOURCE_H * SOURCE_H * 3  # 128x128 RGB rows are 4-byte aligned already
    data = np.fromfile(out, dtype=np.uint8)
    assert data.size == FRAMES * frame_bytes, f"{data.size} bytes, not {FRAMES} frames of 128x128"
    return data.reshape(FRAMES, SOURCE_H, SOURCE_H, 3)


def check_provenance(model_dir: Path, hub: dict, unet_repo: str, unet_file: str) -> None:
    manifest = json.loads((model_dir / "manifest.json").read_text())
    for part, repo, weights in (("unet", unet_repo, unet_file),
                                ("vae", VAE_REPO, "vae/diffusion_pytorch_model.safetensors")):
        source = manifest["source"][part]["hub"]
        assert source["repo"] == repo and source["revision"] == "main"
        assert source["commit"] == hub["commits"][repo]
        expected = hashlib.sha256(hub["files"][repo][weights]).hexdigest()
        assert source["files"][weights]["sha256"] == expected
        assert manifest["source"][part]["sha256"] == expected
    assert manifest["source"]["vae"]["hub"]["licence"] == "creativeml-openrail-m"


def make_model(home: Path, out: Path, *make_args: str) -> subprocess.CompletedProcess:
    """`make model MODEL=m3ddm OUT=out CANVAS=128 make_args` against the offline cache."""
    return subprocess.run(["make", "-s", "--no-print-directory", "-C", str(PROJECT_ROOT), "model", "MODEL=m3ddm",
                           f"OUT={out}", "CANVAS=128", *make_args],
                          capture_output=True, text=True, env=offline_env(home, out.parent / "unused"))


def test_make_model_m3ddm_bin_layout(hub_home, tmp_path):
    """`make model` (the M3DDM layout: fp16 .bin at the root) writes a directory the element runs."""
    home, hub = hub_home
    out = tmp_path / "m3ddm"
    run = make_model(home, out)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "diffusion_pytorch_model.bin" in run.stderr
    # This stand-in has no model card: the licence M3DDM publishes is shown, marked as such.
    assert "licence: apache-2.0, as published (the model card was not read)" in run.stderr
    check_provenance(out, hub, M3DDM_REPO, "diffusion_pytorch_model.bin")
    assert json.loads((out / "manifest.json").read_text())["strides"] == [15, 5, 1]  # the official plan
    frames = run_in_element(str(out), tmp_path)
    assert frames[:, :, :16].std() > 0, "the generated band is flat"


def test_make_model_strides_go_into_the_manifest(hub_home, tmp_path):
    """`make model STRIDES=5,3,1` records them as the model's default; a list not ending in 1 is refused."""
    home, _ = hub_home
    out = tmp_path / "m3ddm"
    run = make_model(home, out, "STRIDES=5,3,1", "MODEL_ARGS=--no-verify")
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads((out / "manifest.json").read_text())["strides"] == [5, 3, 1]
    assert "strides 5,3,1" in run.stdout
    bad = tmp_path / "bad"
    run = make_model(home, bad, "STRIDES=4,2")
    assert run.returncode != 0
    assert "The stride list '4,2' does not end in 1" in run.stderr and "Traceback" not in run.stderr
    assert not bad.exists()


def test_from_hub_m3ddm_plus_into_the_named_place(hub_home, tmp_path):
    """--from-hub m3ddm-plus (fp16 .safetensors at the root) without --out writes $M3DDM_MODELS_DIR/m3ddm-plus."""
    home, hub = hub_home
    models_dir = tmp_path / "models"
    run = run_exporter("--from-hub", "m3ddm-plus", "--canvas", "128", "--no-verify",
                       env=offline_env(home, models_dir))
    assert run.returncode == 0, run.stderr
    assert "licence: apache-2.0" in run.stderr
    check_provenance(models_dir / "m3ddm-plus", hub, M3DDM_PLUS_REPO, "diffusion_pytorch_model.safetensors")
    # M3DDM+'s strides, as its evaluate.py runs them; the element plans at them by default.
    assert json.loads((models_dir / "m3ddm-plus" / "manifest.json").read_text())["strides"] == [5, 3, 1]
    assert "strides 5,3,1" in run.stdout
    run_in_element("m3ddm-plus", tmp_path, models_dir)  # the element finds it by its name


def test_the_element_names_the_command_for_a_missing_named_model(tmp_path):
    pipeline = "videotestsrc num-buffers=2 ! m3ddmoutpaint model-path=m3ddm ! fakesink"
    run = subprocess.run(["gst-launch-1.0", "-q", *pipeline.split()], capture_output=True, text=True,
                         env=gst_launch_env(tmp_path), timeout=60)
    assert run.returncode != 0
    assert f"{tmp_path / 'm3ddm'} has no manifest.json" in run.stderr
    assert "make it with: make model MODEL=m3ddm" in run.stderr


def test_from_hub_unet_folder_fp16_variant(hub_home, tmp_path):
    """A U-Net in unet/ with only diffusion_pytorch_model.fp16.safetensors, through --unet-repo."""
    home, hub = hub_home
    out = tmp_path / "m"
    run = run_exporter("--from-hub", "m3ddm", "--unet-repo", "someone/m3ddm-in-unet-folder", "--out", str(out),
                       "--canvas", "128", "--no-verify", env=offline_env(home, tmp_path))
    assert run.returncode == 0, run.stderr
    check_provenance(out, hub, "someone/m3ddm-in-unet-folder", "unet/diffusion_pytorch_model.fp16.safetensors")


@pytest.mark.parametrize("args,sentence", [
    (["--from-hub", "m3ddm", "--unet-repo", "nobody/not-cached"], "is not in the Hugging Face cache"),
    (["--from-hub", "m3ddm", "--revision", "v9"], "is not in the Hugging Face cache"),
    (["--from-hub", "m3ddm", "--unet-repo", "not a repo name"], "is not a Hugging Face repository name"),
])
def test_offline_refusals_are_sentences(hub_home, tmp_path, args, sentence):
    home, _ = hub_home
    run = run_exporter(*args, "--out", str(tmp_path / "m"), env=offline_env(home, tmp_path))
    assert run.returncode == 1
    assert sentence in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) <= 1 or "from the local cache" in run.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("make_args,precision", [((), "fp32"), (("GPU=1",), "fp16"),
                                                 (("GPU=1", "PRECISION=fp32"), "fp32")])
def test_make_model_precision_defaults_to_fp16_with_gpu(make_args, precision):
    """`make model` makes fp32 graphs, fp16 ones with GPU=1, PRECISION= over both (make -n: the command only)."""
    run = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(PROJECT_ROOT), "model", "MODEL=m3ddm-plus",
                          *make_args], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert f"--from-hub m3ddm-plus --precision {precision}" in run.stdout
