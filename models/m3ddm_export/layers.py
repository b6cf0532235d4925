"""Building blocks of the M3DDM 3D U-Net, named so that their state-dict keys are the official ones.

Tensors inside the U-Net are video features `[batch, channels, frames, height, width]`.
Spatial layers run on every frame, temporal layers along the frames of every pixel;
GroupNorm on a 5-D tensor normalises over frames too, as the official code does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import TimestepEmbedding
from torch import nn

from .config import TEMPORAL_POSITION_CHANNELS, TEMPORAL_POSITION_MAX_PERIOD


def sinusoidal_embedding(positions: torch.Tensor, dim: int, flip_sin_to_cos: bool, shift: float,
                         max_period: float) -> torch.Tensor:
    """The official `get_timestep_embedding`: float32 `[N, dim]` sin/cos features of `positions` `[N]`."""
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float32, device=positions.device) * (-math.log(max_period) / (half - shift))
    angles = positions.float()[:, None] * torch.exp(exponent)[None, :]
    sin, cos = torch.sin(angles), torch.cos(angles)
    emb = torch.cat([cos, sin] if flip_sin_to_cos else [sin, cos], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


class SinusoidalEmbedding(nn.Module):
    """Parameter-free sinusoid (the official `Timesteps`, including its `max_period`)."""

    def __init__(self, dim: int, flip_sin_to_cos: bool, shift: float, max_period: float):
        super().__init__()
        self.dim, self.flip, self.shift, self.max_period = dim, flip_sin_to_cos, shift, max_period

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return sinusoidal_embedding(positions, self.dim, self.flip, self.shift, self.max_period)


# Tracing note: sizes passed to reshape must come from unpacking or indexing `x.shape`
# (the tracer records those as graph values); `unflatten` with such sizes and slices of
# `x.shape` are recorded as constants, which breaks the graph at other shapes.


def frames_to_batch(x: torch.Tensor) -> torch.Tensor:
    """`[b, c, f, h, w]` -> `[b*f, c, h, w]`."""
    return x.transpose(1, 2).flatten(0, 1)


def batch_to_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """`[b*f, c, h, w]` -> `[b, c, f, h, w]`."""
    _, c, h, w = x.shape
    return x.reshape(-1, frames, c, h, w).transpose(1, 2)


class Pseudo3DConv(nn.Module):
    """A 2-D convolution on every frame followed by a 1-D convolution along time at every pixel."""

    def __init__(self, dim: int, dim_out: int, kernel_size: int = 3):
        super().__init__()
        self.spatial_conv = nn.Conv2d(dim, dim_out, kernel_size, padding=kernel_size // 2)
        self.temporal_conv = nn.Conv1d(dim_out, dim_out, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[2]
        x = batch_to_frames(self.spatial_conv(frames_to_batch(x)), frames)
        b, c, f, h, w = x.shape
        # Conv1d along frames at every pixel == a (k, 1) Conv2d on [b, c, f, h*w], without
        # transposes (ONNX Runtime runs 2-D convolutions much faster than 3-D ones on CPU).
        kernel = self.temporal_conv.weight.unsqueeze(-1)
        pad = self.temporal_conv.padding[0]
        x = F.conv2d(x.reshape(b, c, f, h * w), kernel, self.temporal_conv.bias, padding=(pad, 0))
        return x.reshape(b, c, f, h, w)


class ResnetBlockP3D(nn.Module):
    """Residual block with pseudo-3D convolutions and additive timestep and fps embeddings."""

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, groups: int, eps: float,
                 output_scale_factor: float = 1.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = Pseudo3DConv(in_channels, out_channels)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.fps_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.conv2 = Pseudo3DConv(out_channels, out_channels)
        self.output_scale_factor = output_scale_factor
        self.conv_shortcut = nn.Conv3d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor, femb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None, None]
        h = h + self.fps_emb_proj(F.silu(femb))[:, :, None, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        out = x + h
        if self.output_scale_factor != 1.0:
            out = out / self.output_scale_factor
        return out


class Attention(nn.Module):
    """Multi-head attention (`to_q/to_k/to_v/to_out.0`), scores scaled by 1/sqrt(head width)."""

    def __init__(self, query_dim: int, heads: int, dim_head: int, context_dim: int | None = None):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head, self.scale = heads, dim_head, dim_head ** -0.5
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim))

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        n, length, _ = x.shape
        return x.reshape(n, length, self.heads, self.dim_head).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        source = x if context is None else context
        q = self.split_heads(self.to_q(x))
        k = self.split_heads(self.to_k(source))
        v = self.split_heads(self.to_v(source))
        # softmax(q k^T * scale) v: PyTorch runs it fused, the ONNX export is MatMul/Softmax/MatMul.
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.to_out(out.transpose(1, 2).flatten(2))


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward, `net.0.proj` and `net.2` (index 1 is the official dropout)."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Identity(), nn.Linear(dim * mult, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Self-attention, cross-attention (self-attention when there is no context), feed-forward."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int | None):
        super().__init__()
        self.attn1 = Attention(dim, heads, dim_head)
        self.ff = FeedForward(dim)
        self.attn2 = Attention(dim, heads, dim_head, context_dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """`x` `[n, tokens, dim]`; `context` `[b, T, D]` is shared by the n/b consecutive rows of item b."""
        x = self.attn1(self.norm1(x)) + x
        if context is None:
            x = self.attn2(self.norm2(x)) + x
        else:
            # Every frame of an item attends to the same context, so the frames' queries are
            # stacked into one sequence per item: the same result as repeating the context per
            # frame (the official code), with the keys and values computed once.
            n, tokens, dim = x.shape
            queries = self.norm2(x).reshape(context.shape[0], -1, dim)
            x = self.attn2(queries, context).reshape(n, tokens, dim) + x
        return self.ff(self.norm3(x)) + x


class SpatialTemporalTransformer(nn.Module):
    """Per-frame spatial transformer (with cross-attention to the global context), then a temporal one."""

    def __init__(self, channels: int, heads: int, dim_head: int, groups: int, context_dim: int):
        super().__init__()
        inner = heads * dim_head
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(inner, heads, dim_head, context_dim)])
        self.proj_out = nn.Conv2d(inner, channels, 1)
        self.temporal_position_embed = SinusoidalEmbedding(
            TEMPORAL_POSITION_CHANNELS, True, 0, TEMPORAL_POSITION_MAX_PERIOD)
        self.temporal_position_embed_proj = TimestepEmbedding(TEMPORAL_POSITION_CHANNELS, inner)
        self.norm2 = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in2 = nn.Conv3d(channels, inner, 1)
        self.transformer_blocks2 = nn.ModuleList([BasicTransformerBlock(inner, heads, dim_head, None)])
        self.proj_out2 = nn.Conv3d(inner, channels, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, _, frames, height, width = x.shape
        # Spatial: every frame is an image; tokens are its pixels.
        residual = frames_to_batch(x)
        h = self.proj_in(self.norm(residual)).permute(0, 2, 3, 1).flatten(1, 2)
        for block in self.transformer_blocks:
            h = block(h, context)
        h = h.reshape(b * frames, height, width, -1).permute(0, 3, 1, 2)
        x = batch_to_frames(self.proj_out(h) + residual, frames)
        # Temporal: every pixel is a sequence of frames, with a sinusoidal frame-position embedding.
        residual = x
        h = self.proj_in2(self.norm2(x)).permute(0, 3, 4, 2, 1).flatten(0, 2)
        steps = torch.arange(frames, device=x.device).to(x.dtype)
        position = self.temporal_position_embed_proj(self.temporal_position_embed(steps).to(x.dtype))
        h = h + position.unsqueeze(0)
        for block in self.transformer_blocks2:
            h = block(h)
        h = h.reshape(b, height, width, frames, -1).permute(0, 4, 3, 1, 2)
        return self.proj_out2(h) + residual


class Downsample3D(nn.Module):
    """Stride-2 (1,3,3) convolution on every frame."""

    def __init__(self, channels: int, padding: int):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv3d(channels, channels, (1, 3, 3), stride=(1, 2, 2), padding=(0, padding, padding))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample3D(nn.Module):
    """Nearest 2x upsampling of every frame (to the skip connection's size), then a (1,3,3) convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor, size: tuple) -> torch.Tensor:
        frames = x.shape[2]
        # Interpolating to the skip's size equals scale 2 for even sizes and is what the
        # official code does (upsample_size) for sizes that are not multiples of 8.
        up = F.interpolate(frames_to_batch(x), size=size, mode="nearest")
        return self.conv(batch_to_frames(up, frames))
