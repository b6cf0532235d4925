# SPDX-License-Identifier: MPL-2.0
"""The results as the papers lay them out: a row per setting, a column per
metric and mask ratio, then the average over the ratios; one table over the
whole frame and one over the generated area only, with each setting's time
per frame. Printed, and written as Markdown and CSV; and a contact sheet per
clip (the ground truth, then each setting, a few frames across the clip)."""

import csv
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

METRICS = [  # key, title, better, digits
    ("psnr", "PSNR", "↑", 2),
    ("ssim", "SSIM", "↑", 4),
    ("lpips", "LPIPS", "↓", 4),
    ("fvd", "FVD", "↓", 1),
]
SCOPES = [("frame", "whole frame"), ("region", "generated area only")]


def average(values):
    """The mean of the ratios' values (None when a metric is absent)."""
    present = [v for v in values if v is not None]
    if len(present) != len(values) or not present:
        return None
    return float(np.mean(present))


def cell(value, digits) -> str:
    if value is None:
        return "absent"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


class Results:
    """Scores per setting, ratio, metric and scope; seconds and frames per setting."""

    def __init__(self, settings, ratios):
        self.settings = settings
        self.ratios = ratios
        self.scores = {}  # (setting, ratio, metric, scope) -> value or None
        self.seconds = {s: 0.0 for s in settings}
        self.frames = {s: 0 for s in settings}
        self.absent = {}  # metric -> why

    def set(self, setting, ratio, metric, scope, value):
        self.scores[(setting, ratio, metric, scope)] = value

    def value(self, setting, ratio, metric, scope):
        if ratio == "avg":
            return average([self.scores.get((setting, r, metric, scope)) for r in self.ratios])
        return self.scores.get((setting, ratio, metric, scope))

    def columns(self):
        return [(key, r) for key, *_ in METRICS for r in [*self.ratios, "avg"]]

    def per_frame(self, setting) -> float:
        return self.seconds[setting] / max(self.frames[setting], 1)

    def markdown(self) -> str:
        lines = []
        for scope, title in SCOPES:
            lines.append(f"**{title.capitalize()}** (mask ratios {', '.join(self.ratios)}; avg = their mean)\n")
            head = ["setting"] + [f"{t}{b} {r}" for key, t, b, _ in METRICS for r in [*self.ratios, "avg"]]
            if scope == "frame":
                head.append("s/frame")
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "---|" * len(head))
            for s in self.settings:
                row = [s] + [cell(self.value(s, r, key, scope), digits)
                             for key, _, _, digits in METRICS for r in [*self.ratios, "avg"]]
                if scope == "frame":
                    row.append(f"{self.per_frame(s):.3f}")
                lines.append("| " + " | ".join(row) + " |")
            lines.append("")
        for metric, why in self.absent.items():
            lines.append(f"{metric}: {why}")
        return "\n".join(lines).rstrip() + "\n"

    def write_csv(self, path: Path):
        with open(path, "w", newline="") as f:
            out = csv.writer(f)
            head = ["setting", "seconds_per_frame"] + [
                f"{key}_{scope}_{r}" for scope, _ in SCOPES for key, *_ in METRICS for r in [*self.ratios, "avg"]]
            out.writerow(head)
            for s in self.settings:
                row = [s, f"{self.per_frame(s):.6f}"]
                for scope, _ in SCOPES:
                    for key, *_ in METRICS:
                        for r in [*self.ratios, "avg"]:
                            v = self.value(s, r, key, scope)
                            row.append("absent" if v is None else repr(float(v)))
                out.writerow(row)


def contact_sheet(path: Path, truth: np.ndarray, made: dict, picks, tile: int = 128):
    """Rows: the ground truth, then each (label, frames) of `made`; columns:
    the frames `picks`, each scaled to `tile`; the label on the left."""
    label_width = 260
    rows = [("ground truth", truth)] + list(made.items())
    sheet = Image.new("RGB", (label_width + tile * len(picks), tile * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for y, (label, frames) in enumerate(rows):
        draw.text((4, y * tile + tile // 2 - 6), label[:42], fill="black")
        for x, k in enumerate(picks):
            image = Image.fromarray(frames[k]).resize((tile, tile), Image.BILINEAR)
            sheet.paste(image, (label_width + x * tile, y * tile))
    sheet.save(path)
