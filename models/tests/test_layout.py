"""State-dict layout: the full-size U-Net on `meta` against the manifest case, and the tiny checkpoints."""

from __future__ import annotations

import json

import torch

from m3ddm_export.checkpoint import layout_differences, read_config, read_state_dict
from m3ddm_export.config import UNetConfig
from m3ddm_export.manifest_case import check_manifest_case
from m3ddm_export.unet3d import UNet3D

from conftest import run_exporter

FULL_CASE = "unet-full-manifest"


def test_full_layout_matches_manifest_case(golden):
    path = golden / FULL_CASE / "case.json"
    case = json.loads(path.read_text())
    with torch.device("meta"):
        module = UNet3D(UNetConfig.from_dict(case["config"]))
    state = module.state_dict()
    assert [(name, list(t.shape)) for name, t in state.items()] == [(e["name"], e["shape"]) for e in case["state"]]
    assert len(state) == case["num_state_entries"] == 1516
    assert sum(p.numel() for p in module.parameters()) == case["num_parameters"] == 1_299_279_320
    buffers = [name for name, _ in module.named_buffers()]
    assert len(buffers) == 105 and all("global_img_encoder" in name for name in buffers)
    assert check_manifest_case(path) == (True, "manifest ok: 1516 entries, 1299279320 parameters")


def test_check_manifest_command(golden):
    result = run_exporter("check-manifest", str(golden / FULL_CASE / "case.json"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "manifest ok: 1516 entries, 1299279320 parameters\n"


def test_check_manifest_reports_first_mismatch(golden, tmp_path):
    case = json.loads((golden / FULL_CASE / "case.json").read_text())
    entry = case["state"][40]
    entry["shape"] = [entry["shape"][0] + 1] + entry["shape"][1:]
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case))
    result = run_exporter("check-manifest", str(path))
    assert result.returncode != 0
    assert result.stdout.count("\n") == 1 and result.stdout.startswith("manifest mismatch: ")
    assert entry["name"] in result.stdout


def test_check_manifest_counts(golden, tmp_path):
    case = json.loads((golden / FULL_CASE / "case.json").read_text())
    case["num_parameters"] += 1
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case))
    ok, line = check_manifest_case(path)
    assert not ok and "parameters" in line


def test_tiny_model_a_layout_follows_its_config(golden):
    """1,514 entries: conv_shortcut only where a block changes width, built from the config."""
    directory = golden / "tiny-model-a" / "unet"
    with torch.device("meta"):
        module = UNet3D(UNetConfig.from_dict(read_config(directory, "U-Net")))
    found = read_state_dict(directory / "diffusion_pytorch_model.safetensors", "U-Net")
    assert layout_differences(module.state_dict(), found) == []
    assert len(found) == 1514
    shortcuts = sorted(name for name in found if name.endswith("conv_shortcut.weight"))
    assert "down_blocks.2.resnets.0.conv_shortcut.weight" in shortcuts
    assert "down_blocks.1.resnets.0.conv_shortcut.weight" not in shortcuts
