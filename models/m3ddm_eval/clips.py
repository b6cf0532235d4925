# SPDX-License-Identifier: MPL-2.0
"""The clips of a data folder: video files (decoded with GStreamer, the
project's own reader) and folders of numbered frames (as DAVIS and
YouTube-VOS ship them), each read as its first frames resized to a square,
packed RGB uint8 [T, S, S, 3]."""

import re
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from .element import ElementError, gst_launch

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mpg", ".mpeg", ".y4m"}
FRAME_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
# DAVIS and YouTube-VOS give frames, not a rate; both were shot at 24-30 fps.
FOLDER_FPS = Fraction(24)


@dataclass
class Clip:
    name: str
    path: Path
    fps: Fraction


def find_clips(data: Path) -> list:
    """Every video file and every folder of frames directly in `data`, by name."""
    if not data.is_dir():
        raise SystemExit(f"m3ddm_eval: {data} is not a folder of videos")
    clips = []
    for entry in sorted(data.iterdir()):
        if entry.is_file() and entry.suffix.lower() in VIDEO_SUFFIXES:
            clips.append(Clip(entry.stem, entry, video_fps(entry)))
        elif entry.is_dir() and frame_files(entry):
            clips.append(Clip(entry.name, entry, FOLDER_FPS))
    if not clips:
        raise SystemExit(
            f"m3ddm_eval: {data} holds no video file ({', '.join(sorted(VIDEO_SUFFIXES))}) "
            "and no folder of numbered frames")
    return clips


def frame_files(folder: Path) -> list:
    """The image files of a frame folder in frame order (by the number in their name)."""
    files = [f for f in folder.iterdir() if f.suffix.lower() in FRAME_SUFFIXES]

    def number(f):
        digits = re.findall(r"\d+", f.stem)
        return (int(digits[-1]) if digits else -1, f.name)

    return sorted(files, key=number)


def video_fps(path: Path) -> Fraction:
    """The frame rate gst-discoverer reports (25 when it reports none)."""
    found = subprocess.run(["gst-discoverer-1.0", str(path)], capture_output=True, text=True)
    match = re.search(r"Frame rate: (\d+)/(\d+)", found.stdout)
    if found.returncode != 0 and not match:
        raise SystemExit(f"m3ddm_eval: cannot read {path}: {found.stdout.strip() or found.stderr.strip()}")
    if match and int(match.group(1)) > 0 and int(match.group(2)) > 0:
        return Fraction(int(match.group(1)), int(match.group(2)))
    return Fraction(25)


def read_clip(clip: Clip, size: int, frames: int = 0) -> np.ndarray:
    """The first `frames` frames (0: all) of `clip`, resized to size x size."""
    if clip.path.is_dir():
        files = frame_files(clip.path)
        if frames:
            files = files[:frames]
        return np.stack([
            np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.LANCZOS))
            for f in files
        ])
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "frames.rgb"
        pipeline = (
            f'filesrc location="{clip.path}" ! decodebin ! videoconvert ! videoscale method=lanczos '
            f"! video/x-raw,format=RGB,width={size},height={size},pixel-aspect-ratio=1/1 "
            f'! filesink location="{raw}"'
        )
        try:
            gst_launch(pipeline, f"decoding {clip.path}")
        except ElementError as err:
            raise SystemExit(f"m3ddm_eval: {err}") from None
        data = np.fromfile(raw, dtype=np.uint8)
    video = data.reshape(-1, size, size, 3)
    if frames:
        video = video[:frames]
    if len(video) == 0:
        raise SystemExit(f"m3ddm_eval: {clip.path} gave no frame")
    return video
