"""The timing scripts: their output lines (what `make bench` reads) and their refusals."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import MODELS_DIR


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(MODELS_DIR))
    return subprocess.run([sys.executable, "-m", f"m3ddm_export.{module}", *args], env=env,
                          capture_output=True, text=True)


def test_bench_graphs_times_every_call_of_every_directory():
    tiny = str(MODELS_DIR / "tiny")
    result = run_module("bench_graphs", f"a={tiny}", f"b={tiny}", "--reps", "1", "--latent", "8", "--no-spin")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if not line.startswith("#")]
    assert sorted((row[0], row[1]) for row in rows) == sorted(
        (call, label) for call in ("unet1", "unet3", "global", "vae_enc", "vae_dec") for label in "ab")
    assert all(float(row[3]) > 0 for row in rows)


def test_bench_window_prints_one_line_per_window(golden):
    result = run_module("bench_window", "--case", str(golden / "window-tiny-a"),
                        "--model", str(golden / "tiny-model-a"), "--steps", "1", "--reps", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"torch_window threads=\d+ steps=1 case=window-tiny-a", lines[0])
    reps = [re.fullmatch(r"torch_window rep=(\d) seconds=\d+\.\d{3}", line) for line in lines[1:3]]
    assert [match.group(1) for match in reps] == ["1", "2"]
    assert lines[3].startswith("torch_window final_latents max_abs_err=") and "not comparable" in lines[3]


def test_bench_window_refuses_other_cases(golden):
    result = run_module("bench_window", "--case", str(golden / "unet-tiny-a"), "--model", str(golden / "tiny-model-a"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"bench_window: {golden / 'unet-tiny-a'} is a 'unet' case, not a window case."
