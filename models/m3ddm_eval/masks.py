# SPDX-License-Identifier: MPL-2.0
"""The papers' masks: a ratio of the canvas's width (horizontal) or height
(vertical) is generated, split equally between both sides, and the centre is
kept. 0.25 of 256 masks 32 pixels a side and keeps 192; 0.66 masks
round(84.48) = 84 a side and keeps 88."""

from dataclasses import dataclass

import numpy as np

DIRECTIONS = ("horizontal", "vertical")


@dataclass(frozen=True)
class Mask:
    """The kept centre of a `size`-square frame: `side` pixels are generated
    on each of the two sides across `direction`."""

    ratio: float
    direction: str
    size: int
    side: int

    @staticmethod
    def of(ratio: float, direction: str, size: int) -> "Mask":
        if direction not in DIRECTIONS:
            raise ValueError(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
        if not 0.0 < ratio < 1.0:
            raise ValueError(f"mask ratio {ratio} is not between 0 and 1")
        side = int(round(size * ratio / 2))
        if side < 1 or size - 2 * side < 2:
            raise ValueError(f"mask ratio {ratio} leaves nothing to keep or generate at {size}")
        return Mask(ratio, direction, size, side)

    @property
    def kept(self) -> int:
        """The kept centre's width (horizontal) or height (vertical)."""
        return self.size - 2 * self.side

    def axis(self) -> int:
        """The axis of a frame [H, W, C] the mask runs across."""
        return 1 if self.direction == "horizontal" else 0

    def centre(self, frames: np.ndarray) -> np.ndarray:
        """The kept centre of frames [..., H, W, C] (a copy, contiguous)."""
        keep = slice(self.side, self.side + self.kept)
        index = (Ellipsis, slice(None), keep, slice(None)) if self.axis() == 1 else (
            Ellipsis, keep, slice(None), slice(None))
        return np.ascontiguousarray(frames[index])

    def generated(self) -> np.ndarray:
        """A boolean [H, W] map of the generated pixels."""
        area = np.ones((self.size, self.size), dtype=bool)
        keep = slice(self.side, self.side + self.kept)
        if self.axis() == 1:
            area[:, keep] = False
        else:
            area[keep, :] = False
        return area

    def bands(self, frames: np.ndarray) -> list:
        """The two generated bands of frames [..., H, W, C], each as it lies."""
        first = slice(0, self.side)
        last = slice(self.size - self.side, self.size)
        if self.axis() == 1:
            return [frames[..., :, first, :], frames[..., :, last, :]]
        return [frames[..., first, :, :], frames[..., last, :, :]]

    def band_image(self, frames: np.ndarray) -> np.ndarray:
        """The generated pixels of frames [..., H, W, C] as one image per
        frame: the two bands side by side across the mask's axis."""
        return np.concatenate(self.bands(frames), axis=-2 if self.axis() == 1 else -3)

    def label(self) -> str:
        return f"{self.ratio:g}"
