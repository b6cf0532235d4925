"""Architecture settings of the M3DDM 3D U-Net and checks of a diffusers-style VAE config.

`UNetConfig` reads the checkpoint's `unet/config.json` (the official `UNet3DConditionModel`
arguments) and refuses settings the official architecture does not have, so that a
module built from it has exactly the checkpoint's state-dict layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ExportError

DOWN_BLOCK_TYPES = ("CrossAttnDownBlock3D", "DownBlockP3D")
UP_BLOCK_TYPES = ("CrossAttnUpBlock3D", "UpBlockP3D")

# The light global-frame image encoder ends in a fixed 128 -> 320 convolution, and the
# temporal position embedding is a fixed 320-wide sinusoid: both are hard-wired in the
# official architecture, so cross-attention must read 320-wide context tokens.
GLOBAL_CONTEXT_DIM = 320
TEMPORAL_POSITION_CHANNELS = 320
# Frames per window and global frames per clip (official pipeline constants).
WINDOW_FRAMES = 16
GLOBAL_FRAMES = 16
# The coarse-to-fine strides of the official plan, a model's default unless its manifest's
# `strides` says otherwise; the engine takes each stride from 1 to MAX_STRIDE.
OFFICIAL_STRIDES = (15, 5, 1)
MAX_STRIDE = 15
# Sinusoid periods of the official `Timesteps` (its default is 1000, not diffusers' 10000).
TIMESTEP_MAX_PERIOD = 1000
FPS_MAX_PERIOD = 30
TEMPORAL_POSITION_MAX_PERIOD = 1000


def parse_strides(text: str) -> tuple[int, ...]:
    """A comma-separated stride list checked as the engine checks it (`planner::Strides`)."""
    try:
        strides = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ExportError(f"The stride list {text!r} is not whole numbers separated by commas (e.g. 15,5,1).") \
            from None
    if any(not 1 <= s <= MAX_STRIDE for s in strides):
        raise ExportError(f"The stride list {text!r} has a stride outside 1 to {MAX_STRIDE}.")
    if any(b >= a for a, b in zip(strides, strides[1:])):
        raise ExportError(f"The stride list {text!r} is not strictly decreasing (the passes go from coarse to fine).")
    if strides[-1] != 1:
        raise ExportError(f"The stride list {text!r} does not end in 1 (the last pass must make every frame).")
    return strides


def global_grid(latent_size: int) -> int:
    """Side of the global encoder's output grid for a latent side (stride 2, then an unpadded 3x3)."""
    return (latent_size + 1) // 2 - 2


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 9
    out_channels: int = 4
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    down_block_types: tuple[str, ...] = ("CrossAttnDownBlock3D",) * 3 + ("DownBlockP3D",)
    up_block_types: tuple[str, ...] = ("UpBlockP3D",) + ("CrossAttnUpBlock3D",) * 3
    layers_per_block: int = 2
    attention_head_dim: int = 8  # the official code uses it as the number of heads
    cross_attention_dim: int = GLOBAL_CONTEXT_DIM
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    downsample_padding: int = 1
    mid_block_scale_factor: float = 1.0
    center_input_sample: bool = False
    raw: dict = field(default_factory=dict, compare=False)

    @property
    def time_embed_dim(self) -> int:
        return self.block_out_channels[0] * 4

    @staticmethod
    def from_dict(cfg: dict) -> "UNetConfig":
        """Reads an official `unet/config.json`; refuses what the architecture cannot be built from."""
        if not isinstance(cfg, dict):
            raise ExportError("The U-Net config is not a JSON object.")
        name = cfg.get("_class_name", "UNet3DConditionModel")
        if name != "UNet3DConditionModel":
            raise ExportError(f"The U-Net config is for a {name}, not the M3DDM UNet3DConditionModel.")
        defaults = UNetConfig()
        try:
            conf = UNetConfig(
                in_channels=int(cfg.get("in_channels", defaults.in_channels)),
                out_channels=int(cfg.get("out_channels", defaults.out_channels)),
                block_out_channels=tuple(int(c) for c in cfg.get("block_out_channels", defaults.block_out_channels)),
                down_block_types=tuple(cfg.get("down_block_types", defaults.down_block_types)),
                up_block_types=tuple(cfg.get("up_block_types", defaults.up_block_types)),
                layers_per_block=int(cfg.get("layers_per_block", defaults.layers_per_block)),
                attention_head_dim=int(cfg.get("attention_head_dim", defaults.attention_head_dim)),
                cross_attention_dim=int(cfg.get("cross_attention_dim") or GLOBAL_CONTEXT_DIM),
                norm_num_groups=int(cfg.get("norm_num_groups", defaults.norm_num_groups)),
                norm_eps=float(cfg.get("norm_eps", defaults.norm_eps)),
                flip_sin_to_cos=bool(cfg.get("flip_sin_to_cos", defaults.flip_sin_to_cos)),
                freq_shift=int(cfg.get("freq_shift", defaults.freq_shift)),
                downsample_padding=int(cfg.get("downsample_padding", defaults.downsample_padding)),
                mid_block_scale_factor=float(cfg.get("mid_block_scale_factor", defaults.mid_block_scale_factor)),
                center_input_sample=bool(cfg.get("center_input_sample", defaults.center_input_sample)),
                raw=dict(cfg),
            )
        except (TypeError, ValueError) as err:
            raise ExportError(f"The U-Net config has a value of the wrong type ({err}).") from None
        conf.validate()
        return conf

    def validate(self) -> None:
        levels = len(self.block_out_channels)
        if levels < 1 or len(self.down_block_types) != levels or len(self.up_block_types) != levels:
            raise ExportError("The U-Net config needs as many down and up block types as block_out_channels.")
        for kind in self.down_block_types:
            if kind not in DOWN_BLOCK_TYPES:
                raise ExportError(f"The U-Net config names down block type {kind!r}, which M3DDM does not have.")
        for kind in self.up_block_types:
            if kind not in UP_BLOCK_TYPES:
                raise ExportError(f"The U-Net config names up block type {kind!r}, which M3DDM does not have.")
        if self.cross_attention_dim != GLOBAL_CONTEXT_DIM:
            raise ExportError(
                f"The U-Net config's cross_attention_dim is {self.cross_attention_dim}, but the M3DDM global "
                f"image encoder produces {GLOBAL_CONTEXT_DIM}-wide context tokens.")
        if self.in_channels != 9 or self.out_channels != 4:
            raise ExportError(
                f"The U-Net config has {self.in_channels} input and {self.out_channels} output channels; "
                "M3DDM takes 9 (noisy 4 + condition 4 + mask 1) and predicts 4.")
        if self.layers_per_block < 1 or self.attention_head_dim < 1:
            raise ExportError("The U-Net config needs layers_per_block and attention_head_dim of at least 1.")
        for width in self.block_out_channels:
            if width < 1 or width % self.norm_num_groups != 0:
                raise ExportError(
                    f"The U-Net config's block width {width} is not a multiple of norm_num_groups "
                    f"({self.norm_num_groups}).")
        if self.downsample_padding not in (0, 1):
            raise ExportError("The U-Net config's downsample_padding must be 0 or 1.")
        act = self.raw.get("act_fn", "silu")
        if act not in ("silu", "swish"):
            raise ExportError(f"The U-Net config's act_fn {act!r} is not supported (M3DDM uses silu).")

    def to_json(self) -> dict:
        """The config as written into the manifest: the checkpoint's own file when there is one."""
        if self.raw:
            return dict(self.raw)
        return {
            "_class_name": "UNet3DConditionModel",
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "block_out_channels": list(self.block_out_channels),
            "down_block_types": list(self.down_block_types),
            "up_block_types": list(self.up_block_types),
            "layers_per_block": self.layers_per_block,
            "attention_head_dim": self.attention_head_dim,
            "cross_attention_dim": self.cross_attention_dim,
            "norm_num_groups": self.norm_num_groups,
            "norm_eps": self.norm_eps,
            "flip_sin_to_cos": self.flip_sin_to_cos,
            "freq_shift": self.freq_shift,
            "sample_size": 32,
        }


def check_vae_config(cfg: dict) -> None:
    """Refuses a VAE config that is not the Stable Diffusion 4-latent-channel AutoencoderKL."""
    if not isinstance(cfg, dict):
        raise ExportError("The VAE config is not a JSON object.")
    name = cfg.get("_class_name", "AutoencoderKL")
    if name != "AutoencoderKL":
        raise ExportError(f"The VAE config is for a {name}, not a Stable Diffusion AutoencoderKL.")
    latent = cfg.get("latent_channels", 4)
    if latent != 4:
        raise ExportError(
            f"The VAE has {latent} latent channels; M3DDM needs the Stable Diffusion VAE with 4 latent channels.")
    if cfg.get("in_channels", 3) != 3 or cfg.get("out_channels", 3) != 3:
        raise ExportError("The VAE does not map 3-channel images; M3DDM needs the Stable Diffusion RGB VAE.")
    levels = len(cfg.get("block_out_channels", (64,)))
    if levels != 4:
        raise ExportError(
            f"The VAE has {levels} resolution levels; M3DDM needs the 8x-downsampling Stable Diffusion VAE (4 levels).")
