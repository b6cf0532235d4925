"""Shared fixtures: where the golden cases are, and exports made once per test session.

The golden directory comes from $M3DDM_GOLDEN (default ../shared/golden relative to the
project root). Exports go to pytest's temporary directory, never next to the cases.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

MODELS_DIR = Path(__file__).resolve().parents[1]
PROJECT_ROOT = MODELS_DIR.parent


def golden_root() -> Path:
    return Path(os.environ.get("M3DDM_GOLDEN", PROJECT_ROOT / ".." / "shared" / "golden")).resolve()


@pytest.fixture(scope="session")
def golden() -> Path:
    root = golden_root()
    if not (root / "README.md").is_file():
        pytest.fail(f"the golden cases were not found at {root}; set M3DDM_GOLDEN")
    return root


def run_exporter(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m m3ddm_export ARGS` as a user runs it (models/ on PYTHONPATH), in `env` or this one."""
    env = dict(env if env is not None else os.environ, PYTHONPATH=str(MODELS_DIR))
    return subprocess.run([sys.executable, "-m", "m3ddm_export", *args], env=env, capture_output=True, text=True)


@pytest.fixture(scope="session")
def golden_model_export(golden, tmp_path_factory) -> Path:
    """tiny-model-a exported by the command line into a temporary directory."""
    out = tmp_path_factory.mktemp("golden-export") / "tiny-model-a"
    model = golden / "tiny-model-a"
    # (the exporter's own second-shape check runs in test_roundtrip on the cheaper tiny model)
    result = run_exporter("--unet", str(model / "unet"), "--vae", str(model / "vae"), "--out", str(out),
                          "--canvas", "128", "--no-verify")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def random_tiny_modules():
    """The seeded tiny PyTorch modules that models/tiny was exported from (seed 0)."""
    from m3ddm_export.tiny import random_tiny
    return random_tiny(0)
