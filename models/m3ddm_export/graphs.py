"""The four graphs of a model directory: their modules, names, dtypes and dynamic axes.

These specs are the contract with the Rust engine (DESIGN.md §1): the manifest is written
from them and every exported graph is checked against them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import GLOBAL_CONTEXT_DIM, GLOBAL_FRAMES, WINDOW_FRAMES, global_grid
from .layers import use_export_group_norms
from .unet3d import UNet3D

FLOAT = "float"  # placeholder for float32 or float16, decided by --precision


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # FLOAT or a fixed dtype name
    shape: tuple  # ints are fixed sizes, strings are named dynamic axes

    def resolved(self, float_dtype: str) -> dict:
        dtype = float_dtype if self.dtype == FLOAT else self.dtype
        return {"name": self.name, "dtype": dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class GraphSpec:
    key: str
    file: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def dynamic_axes(self) -> dict:
        axes = {}
        for tensor in self.inputs + self.outputs:
            named = {i: dim for i, dim in enumerate(tensor.shape) if isinstance(dim, str)}
            if named:
                axes[tensor.name] = named
        return axes


LATENT = 4
GRAPHS = (
    GraphSpec("unet", "unet.onnx",
              (TensorSpec("sample", FLOAT, ("batch", 2 * LATENT + 1, WINDOW_FRAMES, "height", "width")),
               TensorSpec("timestep", "int64", ("batch",)),
               TensorSpec("fps", "int64", ("batch",)),
               TensorSpec("context", FLOAT, ("batch", "tokens", GLOBAL_CONTEXT_DIM))),
              (TensorSpec("noise_pred", FLOAT, ("batch", LATENT, WINDOW_FRAMES, "height", "width")),)),
    GraphSpec("global_encoder", "global_encoder.onnx",
              (TensorSpec("global_latents", FLOAT, (GLOBAL_FRAMES, LATENT, "height", "width")),),
              (TensorSpec("context", FLOAT, (1, "tokens", GLOBAL_CONTEXT_DIM)),)),
    GraphSpec("vae_encoder", "vae_encoder.onnx",
              (TensorSpec("images", FLOAT, ("batch", 3, "image_height", "image_width")),),
              (TensorSpec("latent_mean", FLOAT, ("batch", LATENT, "height", "width")),)),
    GraphSpec("vae_decoder", "vae_decoder.onnx",
              (TensorSpec("latents", FLOAT, ("batch", LATENT, "height", "width")),),
              (TensorSpec("images", FLOAT, ("batch", 3, "image_height", "image_width")),)),
)
GRAPH_BY_KEY = {g.key: g for g in GRAPHS}


class UNetGraph(nn.Module):
    def __init__(self, unet: UNet3D):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, fps, context):
        return self.unet(sample, timestep, fps, context)


class GlobalEncoderGraph(nn.Module):
    def __init__(self, unet: UNet3D):
        super().__init__()
        self.encoder = unet.global_img_encoder

    def forward(self, global_latents):
        return self.encoder.context(global_latents)


class VaeEncoderGraph(nn.Module):
    """Posterior mean of the SD VAE (unscaled latents)."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, images):
        moments = self.vae.encoder(images)
        if self.vae.quant_conv is not None:
            moments = self.vae.quant_conv(moments)
        return moments[:, :LATENT]


class VaeDecoderGraph(nn.Module):
    """SD VAE decoder on unscaled latents; images in [-1, 1] space, unclamped."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, latents):
        if self.vae.post_quant_conv is not None:
            latents = self.vae.post_quant_conv(latents)
        return self.vae.decoder(latents)


def graph_modules(unet: UNet3D, vae: nn.Module) -> dict[str, nn.Module]:
    """The graph wrappers, in eval mode (a wrapper made in training mode would put BatchNorm back into it).

    Their GroupNorms export with a one-pass affine (ExportGroupNorm; eager PyTorch is unchanged).
    """
    use_export_group_norms(unet)
    use_export_group_norms(vae)
    modules = {"unet": UNetGraph(unet), "global_encoder": GlobalEncoderGraph(unet),
               "vae_encoder": VaeEncoderGraph(vae), "vae_decoder": VaeDecoderGraph(vae)}
    return {key: module.eval() for key, module in modules.items()}


def example_inputs(key: str, dtype: torch.dtype, batch: int, latent_hw: tuple[int, int],
                   generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Random inputs of one graph at a given batch and latent size (images are 8x the latent size)."""
    h, w = latent_hw

    def normal(*shape):
        return torch.randn(*shape, generator=generator).to(dtype)

    if key == "unet":
        tokens = GLOBAL_FRAMES * global_grid(h) * global_grid(w)
        return (normal(batch, 2 * LATENT + 1, WINDOW_FRAMES, h, w),
                torch.randint(0, 1000, (batch,), generator=generator),
                torch.randint(1, 31, (batch,), generator=generator),
                normal(batch, tokens, GLOBAL_CONTEXT_DIM))
    if key == "global_encoder":
        return (normal(GLOBAL_FRAMES, LATENT, h, w),)
    if key == "vae_encoder":
        return ((torch.rand(batch, 3, 8 * h, 8 * w, generator=generator) * 2 - 1).to(dtype),)
    if key == "vae_decoder":
        return (normal(batch, LATENT, h, w),)
    raise KeyError(key)
