# SPDX-License-Identifier: MPL-2.0
"""The scores, each over the whole frame and over the generated area only
(the pixels the mask generated: the two bands, never a kept pixel).

PSNR and SSIM are scikit-image's, on frames in [0, 1] (the papers' range),
averaged over a clip's frames; the region PSNR is scikit-image's PSNR over the
generated pixels, the region SSIM the mean of scikit-image's SSIM of each band
(7x7 windows that never reach the kept centre). PSNR of identical frames is
infinite (no cap). LPIPS is the `lpips` package's AlexNet variant on [-1, 1].
FVD is the Frechet distance between the I3D features of the ground-truth and
the generated clips (16 frames spread over each clip, resized to 224x224,
[-1, 1], StyleGAN-V's TorchScript I3D with rescale=False, resize=False,
return_features=True); over the generated area, of the bands side by side."""

import math
import warnings

import numpy as np
from scipy import linalg
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from .masks import Mask

FVD_FRAMES = 16
I3D_SIDE = 224


def unit(frames: np.ndarray) -> np.ndarray:
    return frames.astype(np.float64) / 255.0


def psnr(truth: np.ndarray, made: np.ndarray) -> float:
    """Mean over frames of scikit-image's PSNR (data range 1); inf when identical."""
    with np.errstate(divide="ignore"):  # identical frames: inf, as documented
        values = [peak_signal_noise_ratio(t, m, data_range=1.0) for t, m in zip(unit(truth), unit(made))]
    return float(np.mean(values))


def ssim(truth: np.ndarray, made: np.ndarray) -> float:
    """Mean over frames of scikit-image's SSIM (colour, data range 1)."""
    values = []
    for t, m in zip(unit(truth), unit(made)):
        window = min(7, min(t.shape[:2]) // 2 * 2 - 1)
        values.append(structural_similarity(t, m, channel_axis=-1, data_range=1.0, win_size=window))
    return float(np.mean(values))


def region_psnr(truth: np.ndarray, made: np.ndarray, mask: Mask) -> float:
    return psnr(mask.band_image(truth), mask.band_image(made))


def region_ssim(truth: np.ndarray, made: np.ndarray, mask: Mask) -> float:
    return float(np.mean([ssim(t, m) for t, m in zip(mask.bands(truth), mask.bands(made))]))


class Lpips:
    """LPIPS (AlexNet) with the backbone's weights read from a file."""

    def __init__(self, alexnet_path):
        import lpips
        import torch

        self.torch = torch
        with warnings.catch_warnings():
            # torchvision's and lpips's own deprecation notes about how lpips calls them.
            warnings.simplefilter("ignore", category=UserWarning)
            warnings.simplefilter("ignore", category=FutureWarning)
            self.model = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
        state = torch.load(alexnet_path, map_location="cpu", weights_only=True)
        # lpips keeps torchvision's `features` layers in slices, under their own indices.
        for name, parameter in self.model.net.named_parameters():
            _, index, leaf = name.split(".")
            parameter.data.copy_(state[f"features.{index}.{leaf}"])

    def __call__(self, truth: np.ndarray, made: np.ndarray) -> float:
        def tensor(frames):
            return self.torch.from_numpy(unit(frames) * 2.0 - 1.0).float().permute(0, 3, 1, 2)

        with self.torch.no_grad():
            return float(self.model(tensor(truth), tensor(made)).mean())

    def region(self, truth: np.ndarray, made: np.ndarray, mask: Mask) -> float:
        return float(np.mean([self(t, m) for t, m in zip(mask.bands(truth), mask.bands(made))]))


class I3dFeatures:
    """The I3D features of clips, for FVD."""

    def __init__(self, path):
        import torch

        self.torch = torch
        self.model = torch.jit.load(str(path), map_location="cpu").eval()

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        torch = self.torch
        pick = np.linspace(0, len(frames) - 1, FVD_FRAMES).round().astype(int)
        video = torch.from_numpy(unit(frames[pick]) * 2.0 - 1.0).float().permute(0, 3, 1, 2)
        video = torch.nn.functional.interpolate(video, size=(I3D_SIDE, I3D_SIDE), mode="bilinear",
                                                align_corners=False)
        video = video.permute(1, 0, 2, 3).unsqueeze(0)  # [1, C, T, H, W]
        with torch.no_grad():
            features = self.model(video, rescale=False, resize=False, return_features=True)
        return features.numpy().reshape(-1)


def frechet_distance(first: np.ndarray, second: np.ndarray) -> float:
    """The Frechet distance between Gaussians fitted to two sets of feature
    rows (FVD's formula: |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2))."""
    mu1, mu2 = first.mean(axis=0), second.mean(axis=0)
    cov1 = np.atleast_2d(np.cov(first, rowvar=False)) if len(first) > 1 else np.zeros((first.shape[1],) * 2)
    cov2 = np.atleast_2d(np.cov(second, rowvar=False)) if len(second) > 1 else np.zeros((second.shape[1],) * 2)
    root = np.real(linalg.sqrtm(cov1 @ cov2))
    value = float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1 + cov2 - 2.0 * root))
    return max(value, 0.0) if math.isfinite(value) else value
