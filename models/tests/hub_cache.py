"""Test helpers: tiny checkpoints in the published repositories' layouts, and a Hugging Face
cache on disk in the hub's own layout (models--OWNER--NAME/{blobs,refs,snapshots}).

The repositories are stand-ins with the real names and file layouts: the M3DDM U-Net at the
root as an fp16 .bin, the M3DDM+ U-Net at the root as fp16 .safetensors, and the SD 1.5
VAE in vae/ (.safetensors and .fp16.safetensors) next to a model card with its licence.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import torch
from safetensors.torch import save as safetensors_save

VAE_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
M3DDM_REPO = "alimama-creative/M3DDM-Video-Outpainting"
M3DDM_PLUS_REPO = "MurakawaTakuya/M3DDM-Plus"
VAE_CARD = "---\nlicense: creativeml-openrail-m\ntags:\n- stable-diffusion\n---\n# Stable Diffusion v1-5\n"
PLUS_CARD = "---\nlicense: apache-2.0\n---\n# M3DDM+\n"


def state_of(module: torch.nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {name: (t.to(dtype) if t.is_floating_point() else t).contiguous().clone()
            for name, t in module.state_dict().items()}


def bin_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def unet_files(modules, layout: str, padding: int = 0) -> dict[str, bytes]:
    """The tiny U-Net's files as a repository lays them out: `root-bin`, `root-safetensors`,
    or `unet-fp16` (unet/ with diffusion_pytorch_model.fp16.safetensors); weights in fp16.
    `padding` bytes of safetensors metadata make the file larger (the tensors stay the same)."""
    unet, conf, _, _ = modules
    state = state_of(unet, torch.float16)

    def safetensors_bytes(tensors):
        return safetensors_save(tensors, metadata={"padding": "0" * padding} if padding else None)

    config = json.dumps(conf.to_json()).encode()
    if layout == "root-bin":
        return {"config.json": config, "diffusion_pytorch_model.bin": bin_bytes(state)}
    if layout == "root-safetensors":
        return {"config.json": config, "diffusion_pytorch_model.safetensors": safetensors_bytes(state),
                "README.md": PLUS_CARD.encode()}
    if layout == "unet-fp16":
        return {"unet/config.json": config, "unet/diffusion_pytorch_model.fp16.safetensors": safetensors_bytes(state)}
    raise ValueError(layout)


def vae_files(modules) -> dict[str, bytes]:
    _, _, vae, vae_config = modules
    return {"README.md": VAE_CARD.encode(), "vae/config.json": json.dumps(vae_config).encode(),
            "vae/diffusion_pytorch_model.safetensors": safetensors_save(state_of(vae, torch.float32)),
            "vae/diffusion_pytorch_model.fp16.safetensors": safetensors_save(state_of(vae, torch.float16))}


def commit_of(files: dict[str, bytes]) -> str:
    """A 40-hex commit id that changes with the content."""
    digest = hashlib.sha1()
    for name in sorted(files):
        digest.update(name.encode() + hashlib.sha1(files[name]).digest())
    return digest.hexdigest()


def add_to_cache(hub_cache: Path, repo: str, files: dict[str, bytes], ref: str = "main") -> str:
    """Writes a repository snapshot into a hub cache the way huggingface_hub does; returns its commit."""
    commit = commit_of(files)
    folder = hub_cache / ("models--" + repo.replace("/", "--"))
    for name, data in files.items():
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = folder / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / ref).write_text(commit)
    return commit
