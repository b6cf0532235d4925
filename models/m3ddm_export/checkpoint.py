"""Reading diffusers-style checkpoint directories (`config.json` + weights) into fp32 modules.

Every tensor name and shape is checked against the module built from the config before
anything is loaded; a difference is refused with the first mismatching tensors named.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .config import UNetConfig, check_vae_config
from .errors import ExportError
from .unet3d import UNet3D

WEIGHT_FILES = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.bin",
    "diffusion_pytorch_model.fp16.safetensors",
    "diffusion_pytorch_model.fp16.bin",
)
# Attention names of diffusers checkpoints written before diffusers 0.14 (the SD 1.5 VAE).
DEPRECATED_ATTENTION_NAMES = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
MISMATCHES_NAMED = 3


@dataclass
class Source:
    """Identity of a loaded checkpoint as recorded in the manifest."""

    path: str
    sha256: str
    hub: dict | None = None  # repository, revision, commit, licence and file hashes (--from-hub)

    def to_json(self) -> dict:
        entry = {"path": self.path, "sha256": self.sha256}
        if self.hub is not None:
            entry["hub"] = self.hub
        return entry


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 24), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_config(directory: Path, what: str) -> dict:
    if not directory.is_dir():
        raise ExportError(f"The {what} directory {directory} does not exist.")
    path = directory / "config.json"
    if not path.is_file():
        raise ExportError(f"The {what} directory {directory} has no config.json.")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ExportError(f"The {what} config {path} cannot be read as JSON ({err}).") from None


def find_weights(directory: Path, what: str) -> Path:
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return directory / name
    raise ExportError(
        f"The {what} directory {directory} has no diffusion_pytorch_model.safetensors or diffusion_pytorch_model.bin.")


def read_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
                state = state["state_dict"]
    except Exception as err:  # corrupt or foreign files raise many different types
        raise ExportError(f"The {what} weights {path} cannot be read ({type(err).__name__}: {err}).") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ExportError(f"The {what} weights {path} are not a state dict of tensors.")
    return state


def layout_differences(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> list[str]:
    """Descriptions of the tensors that differ, in the module's order (missing and wrong shape), then extras."""
    differences = []
    for name, tensor in expected.items():
        if name not in found:
            differences.append(f"{name} is missing")
        elif tuple(found[name].shape) != tuple(tensor.shape):
            differences.append(f"{name} has shape {list(found[name].shape)} where {list(tensor.shape)} is expected")
    differences += [f"{name} is unexpected" for name in found if name not in expected]
    return differences


def check_layout(module: nn.Module, found: dict[str, torch.Tensor], what: str, path: Path) -> None:
    differences = layout_differences(module.state_dict(), found)
    if differences:
        named = "; ".join(differences[:MISMATCHES_NAMED])
        more = f" (and {len(differences) - MISMATCHES_NAMED} more)" if len(differences) > MISMATCHES_NAMED else ""
        raise ExportError(f"The {what} weights {path} do not match the layout of their config: {named}{more}.")


def load_into(module: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Loads a layout-checked state dict into a module built on `meta`, floats as float32."""
    converted = {name: (t.float() if t.is_floating_point() else t) for name, t in state.items()}
    module.load_state_dict(converted, strict=True, assign=True)
    return module.eval()


def load_unet(directory: Path, weights: Path | None = None) -> tuple[UNet3D, UNetConfig, Source]:
    """The U-Net of a checkpoint directory (`weights`: the file to read, else the first of WEIGHT_FILES)."""
    conf = UNetConfig.from_dict(read_config(directory, "U-Net"))
    weights = weights or find_weights(directory, "U-Net")
    state = read_state_dict(weights, "U-Net")
    with torch.device("meta"):
        module = UNet3D(conf)
    check_layout(module, state, "U-Net", weights)
    source = Source(str(directory.resolve()), sha256_of(weights))
    return load_into(module, state), conf, source


def build_vae(config: dict) -> nn.Module:
    """A diffusers AutoencoderKL from a config (on the current default device)."""
    from diffusers import AutoencoderKL
    logging.getLogger("diffusers").setLevel(logging.ERROR)
    try:
        return AutoencoderKL.from_config(config)
    except Exception as err:  # diffusers raises assorted errors for bad configs
        raise ExportError(f"The VAE config cannot build an AutoencoderKL ({type(err).__name__}: {err}).") from None


def rename_deprecated_attention(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]):
    """Maps pre-0.14 diffusers attention names (query/key/value/proj_attn) to the current ones."""
    renamed = {}
    for name, tensor in state.items():
        parts = name.rsplit(".", 2)
        if len(parts) == 3 and parts[1] in DEPRECATED_ATTENTION_NAMES:
            new_name = f"{parts[0]}.{DEPRECATED_ATTENTION_NAMES[parts[1]]}.{parts[2]}"
            if new_name in expected:
                name = new_name
                if tensor.dim() == 4 and expected[name].dim() == 2:  # 1x1 conv weights of old files
                    tensor = tensor[:, :, 0, 0]
        renamed[name] = tensor
    return renamed


def load_vae(directory: Path, weights: Path | None = None) -> tuple[nn.Module, dict, Source]:
    config = read_config(directory, "VAE")
    check_vae_config(config)
    weights = weights or find_weights(directory, "VAE")
    state = read_state_dict(weights, "VAE")
    with torch.device("meta"):
        module = build_vae(config)
    state = rename_deprecated_attention(state, module.state_dict())
    check_layout(module, state, "VAE", weights)
    source = Source(str(directory.resolve()), sha256_of(weights))
    return load_into(module, state), config, source
