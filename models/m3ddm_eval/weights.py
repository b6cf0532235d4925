# SPDX-License-Identifier: MPL-2.0
"""The learned metrics' networks, which no package registry ships: LPIPS's
AlexNet backbone (torchvision's ImageNet weights; the `lpips` package ships
only its linear layers) and the I3D network of FVD (StyleGAN-V's TorchScript
port, `i3d_torchscript.pt`). Each is read from the path given on the command
line, else from its usual cache; nothing is downloaded. Where one is absent,
its metric's column says so and the rest of the evaluation runs."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

# torchvision's file name for `alexnet(weights="IMAGENET1K_V1")`.
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
I3D_FILE = "i3d_torchscript.pt"


@dataclass
class Found:
    path: Optional[Path]
    # Why it is absent, for the table (None when found).
    absent: Optional[str]


def torch_cache() -> Path:
    """torch.hub's directory: $TORCH_HOME/hub, else ~/.cache/torch/hub."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch")
    return Path(home) / "hub"


def user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"))


def find(given: Optional[str], candidates: list, what: str, option: str) -> Found:
    if given:
        path = Path(given)
        if not path.is_file():
            raise SystemExit(f"m3ddm_eval: {option} {given}: no such file")
        return Found(path, None)
    for path in candidates:
        if path.is_file():
            return Found(path, None)
    places = " or ".join(str(p) for p in candidates)
    return Found(None, f"absent: no {what} (give {option} PATH or put it at {places})")


def alexnet(given: Optional[str]) -> Found:
    return find(given, [torch_cache() / "checkpoints" / ALEXNET_FILE],
                "AlexNet weights for LPIPS", "--alexnet")


def i3d(given: Optional[str]) -> Found:
    return find(given, [user_cache() / "m3ddm_eval" / I3D_FILE, torch_cache() / "checkpoints" / I3D_FILE],
                "I3D network for FVD", "--i3d")
