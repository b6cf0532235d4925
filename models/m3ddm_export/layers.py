"""Building blocks of the M3DDM 3D U-Net, named so that their state-dict keys are the official ones.

Tensors inside the U-Net are video features `[batch, channels, frames, height, width]`.
Spatial layers run on every frame, temporal layers along the frames of every pixel;
GroupNorm on a 5-D tensor normalises over frames too, as the official code does.
Forward passes are arranged for the ONNX graphs they become (models/README.md, "How the
graphs are made fast"); the arithmetic is the official one up to float rounding.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

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


# Tracing notes. Sizes passed to reshape must come from unpacking or indexing `x.shape`
# (the tracer records those as graph values); `unflatten` with such sizes and slices of
# `x.shape` are recorded as constants, which breaks the graph at other shapes. Sizes that
# are fixed for a layer (its channels) or for the graph (the 16 frames of a window, see
# `fixed_size`) are plain ints instead, so that the graph has as little shape arithmetic
# as possible: the batch axis is -1 wherever it can be.


def fixed_size(size) -> int:
    """A size that is the same for every input of a graph (a layer's channels, the window's frames).

    The tracer records it as a constant (and warns, which trace_graph silences).
    """
    return int(size)


def frames_to_batch(x: torch.Tensor) -> torch.Tensor:
    """`[b, c, f, h, w]` -> `[b*f, c, h, w]`."""
    _, channels, _, h, w = x.shape
    return x.transpose(1, 2).reshape(-1, fixed_size(channels), h, w)


def batch_to_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """`[b*f, c, h, w]` -> `[b, c, f, h, w]`."""
    _, channels, h, w = x.shape
    return x.reshape(-1, frames, fixed_size(channels), h, w).transpose(1, 2)


class GroupNormalize(torch.autograd.Function):
    """GroupNorm without its affine part.

    ONNX: Reshape to `[n, groups, -1]`, InstanceNormalization, Reshape back (PyTorch's own
    export of `F.group_norm` without weights adds a Mul by ones and an Add of zeros).
    `ones` and `zeros` are the InstanceNormalization's per-group scale and shift.
    """

    @staticmethod
    def forward(ctx, x, ones, zeros, groups: int, eps: float):
        return F.group_norm(x, groups, eps=eps)

    @staticmethod
    def symbolic(g, x, ones, zeros, groups: int, eps: float):
        grouped_shape = g.op("Constant", value_t=torch.tensor([0, groups, -1], dtype=torch.int64))
        grouped = g.op("InstanceNormalization", g.op("Reshape", x, grouped_shape), ones, zeros, epsilon_f=eps)
        out = g.op("Reshape", grouped, g.op("Shape", x))
        out.setType(x.type())
        return out


def group_normalize(x: torch.Tensor, groups: int, eps: float) -> torch.Tensor:
    """GroupNorm of `x` `[n, channels, ...]` over `groups` groups, without scale and shift."""
    ones = torch.ones(groups, dtype=x.dtype, device=x.device)
    return GroupNormalize.apply(x, ones, torch.zeros_like(ones), groups, eps)


class ExportGroupNorm(nn.GroupNorm):
    """`nn.GroupNorm` whose ONNX form applies the affine scale and shift as one BatchNormalization.

    PyTorch exports GroupNorm as InstanceNormalization over the groups followed by a Mul and
    an Add per channel; a BatchNormalization with mean 0, variance 1 and epsilon 0 computes
    the same `x * weight + bias` in one pass over the features instead of two. Eager
    PyTorch runs the plain GroupNorm. `use_export_group_norms` turns a module's GroupNorms
    (ours and diffusers') into this class; parameters and state-dict names stay.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.onnx.is_in_onnx_export() or not self.affine:
            return super().forward(x)
        normalized = group_normalize(x, self.num_groups, self.eps)
        return F.batch_norm(normalized, torch.zeros_like(self.weight), torch.ones_like(self.weight),
                            self.weight, self.bias, training=False, eps=0.0)


def use_export_group_norms(module: nn.Module) -> nn.Module:
    """Makes every `nn.GroupNorm` inside `module` an ExportGroupNorm (in place); returns `module`."""
    for layer in module.modules():
        if type(layer) is nn.GroupNorm:
            layer.__class__ = ExportGroupNorm
    return module


class Pseudo3DConv(nn.Module):
    """A 2-D convolution on every frame followed by a 1-D convolution along time at every pixel."""

    def __init__(self, dim: int, dim_out: int, kernel_size: int = 3):
        super().__init__()
        self.spatial_conv = nn.Conv2d(dim, dim_out, kernel_size, padding=kernel_size // 2)
        self.temporal_conv = nn.Conv1d(dim_out, dim_out, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, frames, h, w = x.shape
        frames, channels = fixed_size(frames), self.temporal_conv.out_channels
        x = batch_to_frames(self.spatial_conv(frames_to_batch(x)), frames)
        # Conv1d along frames at every pixel == a (k, 1) Conv2d on [b, c, f, h*w], without
        # transposes (ONNX Runtime runs 2-D convolutions much faster than 3-D ones on CPU).
        kernel = self.temporal_conv.weight.unsqueeze(-1)
        pad = self.temporal_conv.padding[0]
        x = F.conv2d(x.reshape(-1, channels, frames, h * w), kernel, self.temporal_conv.bias, padding=(pad, 0))
        return x.reshape(-1, channels, frames, h, w)


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
        # (both embeddings in one addition to the video features)
        embeddings = self.time_emb_proj(F.silu(temb)) + self.fps_emb_proj(F.silu(femb))
        h = h + embeddings[:, :, None, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        out = x + h
        if self.output_scale_factor != 1.0:
            out = out / self.output_scale_factor
        return out


class FusedAttention(torch.autograd.Function):
    """softmax(q k^T * scale) v over `heads` heads of `[n, length, heads*width]` projections.

    Runs as PyTorch's fused attention and exports as ONNX Runtime's `com.microsoft`
    `MultiHeadAttention` (CPU and CUDA kernels, fp32 and fp16), which never holds the
    whole score matrix in memory.
    """

    @staticmethod
    def forward(ctx, q, k, v, heads: int, scale: float):
        return attention(q, k, v, heads, scale)

    @staticmethod
    def symbolic(g, q, k, v, heads: int, scale: float):
        out = g.op("com.microsoft::MultiHeadAttention", q, k, v, num_heads_i=heads, scale_f=scale)
        out.setType(q.type())
        return out


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, scale: float) -> torch.Tensor:
    """The same as FusedAttention, in plain operators (ONNX: MatMul/Softmax/MatMul per head)."""

    def split_heads(x):
        n, length, width = x.shape
        return x.reshape(n, length, heads, width // heads).transpose(1, 2)

    out = F.scaled_dot_product_attention(split_heads(q), split_heads(k), split_heads(v), scale=scale)
    return out.transpose(1, 2).flatten(2)


# ONNX Runtime's CPU MultiHeadAttention takes queries in blocks of (key head + value head
# width) rows and multiplies by the values in 16-float column blocks, so a value head
# narrower than 16 costs as much as a 16-wide one while its row blocks stay short. For
# long sequences (the spatial and cross attentions; the temporal ones are 16 frames, one
# block already) graphs get such value heads zero-padded to 16, which measured 10-20%
# faster: the padding adds exact zeros and `to_out` reads none of it. Only small test
# models have such heads; the published model's are 40 to 160 wide and export unchanged.
MIN_VALUE_HEAD_WIDTH = 16


def pad_heads(weight: torch.Tensor, heads: int, width: int, axis: int) -> torch.Tensor:
    """Zero-pads each head's block of `weight` along `axis` (0: output rows, 1: input columns) to `width`."""
    rows, columns = (fixed_size(size) for size in weight.shape)
    if axis == 0:
        blocks = weight.reshape(heads, rows // heads, columns)
        return F.pad(blocks, (0, 0, 0, width - rows // heads)).reshape(heads * width, columns)
    blocks = weight.reshape(rows, heads, columns // heads)
    return F.pad(blocks, (0, width - columns // heads)).reshape(rows, heads * width)


class Attention(nn.Module):
    """Multi-head attention (`to_q/to_k/to_v/to_out.0`), scores scaled by 1/sqrt(head width).

    Queries and self-attention keys/values come as 2-D tokens `[n*length, dim]`, so that the
    projections export as plain matrix products (`to_out` as a Gemm with its bias).
    """

    fused = True  # ONNX: one MultiHeadAttention node (False: MatMul/Softmax/MatMul, see unfused_attention)

    def __init__(self, query_dim: int, heads: int, dim_head: int, context_dim: int | None = None):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head, self.inner, self.scale = heads, dim_head, inner, dim_head ** -0.5
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim))

    def forward(self, x: torch.Tensor, sequences: tuple, context: torch.Tensor | None = None) -> torch.Tensor:
        """`x` `[n*length, dim]` -> same shape.

        `sequences` is `(n, length)` with one of them -1; `context` `[n, T, context_dim]` or None.
        """
        value_weight, out_weight, value_width = self.to_v.weight, self.to_out[0].weight, self.inner
        long_sequences = isinstance(sequences[1], int) and sequences[1] == -1
        if (self.fused and torch.onnx.is_in_onnx_export() and long_sequences
                and self.dim_head < MIN_VALUE_HEAD_WIDTH):
            value_width = self.heads * MIN_VALUE_HEAD_WIDTH
            value_weight = pad_heads(value_weight, self.heads, MIN_VALUE_HEAD_WIDTH, 0)
            out_weight = pad_heads(out_weight, self.heads, MIN_VALUE_HEAD_WIDTH, 1)
        source = x if context is None else context
        q = self.to_q(x).reshape(*sequences, self.inner)
        k = self.to_k(source)
        v = F.linear(source, value_weight)
        if context is None:
            k, v = k.reshape(*sequences, self.inner), v.reshape(*sequences, value_width)
        if self.fused:
            out = FusedAttention.apply(q, k, v, self.heads, self.scale)
        else:
            out = attention(q, k, v, self.heads, self.scale)
        return F.linear(out.reshape(-1, value_width), out_weight, self.to_out[0].bias)


@contextmanager
def unfused_attention():
    """Within it, attention exports as MatMul/Softmax/MatMul (the reference for the fused graph)."""
    Attention.fused = False
    try:
        yield
    finally:
        Attention.fused = True


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Two products with halves of the weight instead of one product and a split: the same
        # numbers without copying the halves apart (the tracer folds the weight slices).
        half = self.proj.out_features // 2
        weight, bias = self.proj.weight, self.proj.bias
        value = F.linear(x, weight[:half], bias[:half])
        return value * F.gelu(F.linear(x, weight[half:], bias[half:]))


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

    def forward(self, x: torch.Tensor, sequences: tuple, context: torch.Tensor | None = None) -> torch.Tensor:
        """`x`: tokens `[n*length, dim]` of n sequences, `sequences` = `(n, length)` with one of them -1.

        `context` `[b, T, D]` is shared by the n/b consecutive sequences of item b.
        """
        x = self.attn1(self.norm1(x), sequences) + x
        if context is None:
            x = self.attn2(self.norm2(x), sequences) + x
        else:
            # Every frame of an item attends to the same context, so the frames' queries are
            # stacked into one sequence per item: the same result as repeating the context per
            # frame (the official code), with the keys and values computed once.
            x = self.attn2(self.norm2(x), (context.shape[0], -1), context) + x
        return self.ff(self.norm3(x)) + x


def normalized_pointwise(norm: nn.GroupNorm, conv: nn.Module, x: torch.Tensor, token_order: tuple) -> torch.Tensor:
    """`conv(norm(x))` for a 1x1(x1) `conv`, as channels-last tokens `[tokens, out]`.

    `token_order` permutes the axes of `x` (`[n, channels, ...]`) into token order, channels last.

    The norm's affine scale and shift are folded into the convolution's weight and bias (the
    same products, regrouped), so the graph normalizes and multiplies without two passes
    in between.
    """
    normalized = group_normalize(x, norm.num_groups, norm.eps)
    weight = conv.weight.flatten(1)
    folded_weight = weight * norm.weight[None, :]
    folded_bias = conv.bias + weight @ norm.bias
    tokens = normalized.permute(*token_order).reshape(-1, fixed_size(norm.num_channels))
    return F.linear(tokens, folded_weight, folded_bias)


def pointwise(conv: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """A 1x1(x1) convolution applied to channels-last tokens `[n, in]` (a Gemm in ONNX)."""
    return F.linear(tokens, conv.weight.flatten(1), conv.bias)


class SpatialTemporalTransformer(nn.Module):
    """Per-frame spatial transformer (with cross-attention to the global context), then a temporal one.

    Both work on channels-last tokens; the 1x1 projections in and out are applied to the
    tokens (the same products as the official 1x1 convolutions), and each half goes from
    and back to `[b, c, f, h, w]` with one transpose each way.
    """

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
        b, channels, frames, height, width = x.shape
        channels, frames, inner = fixed_size(channels), fixed_size(frames), self.proj_in.out_channels
        # Spatial: every frame is an image (GroupNorm per frame); tokens are its pixels,
        # ordered (item, frame, row, column).
        h = normalized_pointwise(self.norm, self.proj_in, frames_to_batch(x), (0, 2, 3, 1))
        for block in self.transformer_blocks:
            h = block(h, (b * frames, -1), context)
        h = pointwise(self.proj_out, h).reshape(-1, frames, height, width, channels)
        x = h.permute(0, 4, 1, 2, 3) + x
        # Temporal: every pixel is a sequence of frames, with a sinusoidal frame-position embedding
        # (a constant of the graph); tokens ordered (item, row, column, frame).
        h = normalized_pointwise(self.norm2, self.proj_in2, x, (0, 3, 4, 2, 1))
        steps = torch.arange(frames, device=x.device).to(x.dtype)
        position = self.temporal_position_embed_proj(self.temporal_position_embed(steps).to(x.dtype))
        h = (h.reshape(-1, frames, inner) + position).reshape(-1, inner)
        for block in self.transformer_blocks2:
            h = block(h, (-1, frames))
        h = pointwise(self.proj_out2, h).reshape(-1, height, width, frames, channels)
        return h.permute(0, 4, 3, 1, 2) + x


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
