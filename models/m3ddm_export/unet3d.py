"""The M3DDM 3D U-Net (`UNet3DConditionModel`) and its light global-frame image encoder.

Written from the official architecture (alimama-creative/M3DDM-Video-Outpainting,
`src/model/`) so that `state_dict()` has the checkpoint's names, shapes and order.
Differences from the official forward are only in how work is arranged, never in the
math: the global encoder runs outside the U-Net (its output `context` is an input), the
cross-attention reads each item's context once instead of once per frame, and
timestep/fps come per batch item.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import TimestepEmbedding
from torch import nn

from .config import FPS_MAX_PERIOD, GLOBAL_CONTEXT_DIM, TIMESTEP_MAX_PERIOD, UNetConfig
from .layers import Downsample3D, Pseudo3DConv, ResnetBlockP3D, SinusoidalEmbedding, SpatialTemporalTransformer, Upsample3D

# --- global-frame image encoder -------------------------------------------------------------


class ConvBatchNorm(nn.Module):
    """Conv (no bias) + BatchNorm + optional ReLU (the `transformers` ResNetConvLayer layout)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, relu: bool = True):
        super().__init__()
        self.convolution = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False)
        self.normalization = nn.BatchNorm2d(out_channels)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalization(self.convolution(x))
        return F.relu(x) if self.relu else x


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1 reduce (x1/4), 3x3 (carrying the stride), 1x1 expand; projected shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        reduced = out_channels // 4
        if in_channels != out_channels or stride != 1:
            self.shortcut = ConvBatchNorm(in_channels, out_channels, 1, stride, relu=False)
        else:
            self.shortcut = nn.Identity()
        self.layer = nn.Sequential(
            ConvBatchNorm(in_channels, reduced, 1),
            ConvBatchNorm(reduced, reduced, 3, stride),
            ConvBatchNorm(reduced, out_channels, 1, relu=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.layer(x) + self.shortcut(x))


class ResNetStage(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, depth: int = 2):
        super().__init__()
        self.layers = nn.Sequential(
            Bottleneck(in_channels, out_channels, stride),
            *[Bottleneck(out_channels, out_channels, 1) for _ in range(depth - 1)],
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class GlobalImageEncoder(nn.Module):
    """Five bottleneck stages (4->8->16->32(/2)->64->128) and an unpadded 3x3 conv to 320 channels.

    `[g, 4, h, w]` latents -> `[g, 320, h', w']` with h' = ceil(h/2) - 2.
    """

    STAGES = ((4, 8, 1), (8, 16, 1), (16, 32, 2), (32, 64, 1), (64, 128, 1))

    def __init__(self):
        super().__init__()
        self.resnet_layer = nn.Sequential(*[ResNetStage(i, o, s) for i, o, s in self.STAGES])
        self.convolution = nn.Conv2d(self.STAGES[-1][1], GLOBAL_CONTEXT_DIM, 3)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.convolution(self.resnet_layer(latents))

    def context(self, latents: torch.Tensor) -> torch.Tensor:
        """`[g, 4, h, w]` -> context tokens `[1, g*h'*w', 320]` in (frame, row, column) order."""
        features = self(latents)
        return features.permute(0, 2, 3, 1).reshape(1, -1, features.shape[1])


# --- U-Net blocks -----------------------------------------------------------------------------


class DownBlock(nn.Module):
    """`CrossAttnDownBlock3D` (with attentions) or `DownBlockP3D` (without)."""

    def __init__(self, conf: UNetConfig, in_channels: int, out_channels: int, with_attention: bool, downsample: bool):
        super().__init__()
        heads = conf.attention_head_dim
        if with_attention:
            self.attentions = nn.ModuleList([
                SpatialTemporalTransformer(out_channels, heads, out_channels // heads, conf.norm_num_groups,
                                           conf.cross_attention_dim)
                for _ in range(conf.layers_per_block)])
        else:
            self.attentions = None
        self.resnets = nn.ModuleList([
            ResnetBlockP3D(in_channels if i == 0 else out_channels, out_channels, conf.time_embed_dim,
                           conf.norm_num_groups, conf.norm_eps)
            for i in range(conf.layers_per_block)])
        self.downsamplers = nn.ModuleList([Downsample3D(out_channels, conf.downsample_padding)]) if downsample else None

    def forward(self, x, temb, femb, context):
        skips = []
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb, femb)
            if self.attentions is not None:
                x = self.attentions[i](x, context)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class MidBlock(nn.Module):
    """`UNetMidBlock3DCrossAttn`: resnet, attention, resnet."""

    def __init__(self, conf: UNetConfig, channels: int):
        super().__init__()
        heads = conf.attention_head_dim
        self.attentions = nn.ModuleList([
            SpatialTemporalTransformer(channels, heads, channels // heads, conf.norm_num_groups,
                                       conf.cross_attention_dim)])
        self.resnets = nn.ModuleList([
            ResnetBlockP3D(channels, channels, conf.time_embed_dim, conf.norm_num_groups, conf.norm_eps,
                           conf.mid_block_scale_factor)
            for _ in range(2)])

    def forward(self, x, temb, femb, context):
        x = self.resnets[0](x, temb, femb)
        x = self.attentions[0](x, context)
        return self.resnets[1](x, temb, femb)


class UpBlock(nn.Module):
    """`CrossAttnUpBlock3D` (with attentions) or `UpBlockP3D` (without); each resnet eats one skip."""

    def __init__(self, conf: UNetConfig, in_channels: int, prev_channels: int, out_channels: int,
                 with_attention: bool, upsample: bool):
        super().__init__()
        layers = conf.layers_per_block + 1
        heads = conf.attention_head_dim
        if with_attention:
            self.attentions = nn.ModuleList([
                SpatialTemporalTransformer(out_channels, heads, out_channels // heads, conf.norm_num_groups,
                                           conf.cross_attention_dim)
                for _ in range(layers)])
        else:
            self.attentions = None
        resnets = []
        for i in range(layers):
            skip_channels = in_channels if i == layers - 1 else out_channels
            resnet_in = prev_channels if i == 0 else out_channels
            resnets.append(ResnetBlockP3D(resnet_in + skip_channels, out_channels, conf.time_embed_dim,
                                          conf.norm_num_groups, conf.norm_eps))
        self.resnets = nn.ModuleList(resnets)
        self.upsamplers = nn.ModuleList([Upsample3D(out_channels)]) if upsample else None

    def forward(self, x, skips, temb, femb, context, upsample_size):
        for i, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips.pop()], dim=1), temb, femb)
            if self.attentions is not None:
                x = self.attentions[i](x, context)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, upsample_size)
        return x


class UNet3D(nn.Module):
    """The M3DDM denoiser.

    forward(sample `[B, 9, F, h, w]`, timestep `[B]`, fps `[B]`, context `[B, T, 320]`)
    -> noise prediction `[B, 4, F, h, w]`. Each batch item is computed independently.
    """

    def __init__(self, conf: UNetConfig):
        super().__init__()
        self.conf = conf
        widths = conf.block_out_channels
        self.conv_in = nn.Conv3d(conf.in_channels, widths[0], (1, 3, 3), padding=(0, 1, 1))
        self.time_proj = SinusoidalEmbedding(widths[0], conf.flip_sin_to_cos, conf.freq_shift, TIMESTEP_MAX_PERIOD)
        self.time_embedding = TimestepEmbedding(widths[0], conf.time_embed_dim)
        self.fps_proj = SinusoidalEmbedding(widths[0], conf.flip_sin_to_cos, conf.freq_shift, FPS_MAX_PERIOD)
        self.fps_embedding = TimestepEmbedding(widths[0], conf.time_embed_dim)

        levels = len(widths)
        # Registration order = state-dict order of the checkpoint: down, up, then mid.
        self.down_blocks = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for i, kind in enumerate(conf.down_block_types):
            self.down_blocks.append(DownBlock(conf, widths[max(i - 1, 0)], widths[i],
                                              kind == "CrossAttnDownBlock3D", i < levels - 1))
        reversed_widths = list(reversed(widths))
        for i, kind in enumerate(conf.up_block_types):
            self.up_blocks.append(UpBlock(conf, reversed_widths[min(i + 1, levels - 1)],
                                          reversed_widths[max(i - 1, 0)], reversed_widths[i],
                                          kind == "CrossAttnUpBlock3D", i < levels - 1))
        self.mid_block = MidBlock(conf, widths[-1])
        self.conv_norm_out = nn.GroupNorm(conf.norm_num_groups, widths[0], eps=conf.norm_eps)
        self.conv_out = Pseudo3DConv(widths[0], conf.out_channels)
        self.global_img_encoder = GlobalImageEncoder()

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, fps: torch.Tensor,
                context: torch.Tensor) -> torch.Tensor:
        dtype = sample.dtype
        if self.conf.center_input_sample:
            sample = 2 * sample - 1.0
        temb = self.time_embedding(self.time_proj(timestep).to(dtype))
        femb = self.fps_embedding(self.fps_proj(fps).to(dtype))

        x = self.conv_in(sample)
        skips = [x]
        for block in self.down_blocks:
            x, block_skips = block(x, temb, femb, context)
            skips.extend(block_skips)
        x = self.mid_block(x, temb, femb, context)
        for block in self.up_blocks:
            count = len(block.resnets)
            block_skips, skips = skips[-count:], skips[:-count]
            # (indexed sizes: the tracer keeps these dynamic, but not Size slices)
            upsample_size = (skips[-1].shape[3], skips[-1].shape[4]) if skips else None
            x = block(x, block_skips, temb, femb, context, upsample_size)
        return self.conv_out(F.silu(self.conv_norm_out(x)))

    def global_context(self, global_latents: torch.Tensor) -> torch.Tensor:
        return self.global_img_encoder.context(global_latents)
