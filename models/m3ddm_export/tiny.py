"""Tiny random-weight models of the M3DDM architecture (for tests and the demo, not for real use).

Same blocks, depths and layout rules as the published U-Net, with narrow widths; the global
image encoder is fixed by the architecture and keeps its full (small) size. Every
parameter and buffer is random and seeded, including norm affine parameters and BatchNorm
statistics, so every path of the network changes the result.
"""

from __future__ import annotations

import torch
from torch import nn

from .checkpoint import build_vae
from .config import UNetConfig
from .unet3d import UNet3D

TINY_UNET = UNetConfig(
    block_out_channels=(8, 8, 16, 16),
    norm_num_groups=8,
    attention_head_dim=2,
)
TINY_VAE_CONFIG = {
    "_class_name": "AutoencoderKL",
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [8, 8, 16, 16],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "sample_size": 128,
    "scaling_factor": 0.18215,
}
TINY_CANVAS = 128


def randomize_norms(module: nn.Module, generator: torch.Generator) -> None:
    """Random affine parameters and running statistics for every normalization layer."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm2d)) and layer.weight is not None:
                layer.weight.copy_(1 + 0.2 * torch.randn(layer.weight.shape, generator=generator))
                layer.bias.copy_(0.1 * torch.randn(layer.bias.shape, generator=generator))
            if isinstance(layer, nn.BatchNorm2d):
                layer.running_mean.copy_(0.1 * torch.randn(layer.running_mean.shape, generator=generator))
                layer.running_var.copy_(0.5 + torch.rand(layer.running_var.shape, generator=generator))
                layer.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=generator)))


def random_tiny(seed: int) -> tuple[UNet3D, UNetConfig, nn.Module, dict]:
    """A seeded tiny U-Net and VAE: (unet, its config, vae, vae config)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # default initializers of the layers
    unet = UNet3D(TINY_UNET)
    vae = build_vae(dict(TINY_VAE_CONFIG))
    randomize_norms(unet, generator)
    randomize_norms(vae, generator)
    return unet.eval(), TINY_UNET, vae.eval(), dict(TINY_VAE_CONFIG)
