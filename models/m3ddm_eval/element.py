# SPDX-License-Identifier: MPL-2.0
"""The element does the generating: gst-launch-1.0 pipelines with
m3ddmoutpaint, fed and read as raw RGB files (rawvideoparse in, filesink
out), so no encoder adds its error to the metrics.

The mask maps onto the element as its `aspect`: the kept centre (width
`kept` of a `size` square, or height for a vertical mask) is the source, and
`aspect=1/1` grows it back to `size` x `size` with the source centred, that
is at offset `side` where the ground truth has it; every run checks that the
kept centre comes back bit-exact at that place."""

import os
import shlex
import subprocess
import time
from pathlib import Path

import numpy as np

from .masks import Mask
from .settings import Setting

REPO = Path(__file__).resolve().parents[2]


class ElementError(RuntimeError):
    """A pipeline that failed, with what it printed."""


def environment() -> dict:
    """The plugin from this checkout's build unless GST_PLUGIN_PATH says otherwise."""
    env = dict(os.environ)
    env.setdefault("GST_PLUGIN_PATH", str(REPO / "target" / "release"))
    return env


def gst_launch(description: str, what: str) -> None:
    run = subprocess.run(["gst-launch-1.0", "-q", *shlex.split(description)],
                         capture_output=True, text=True, env=environment())
    if run.returncode != 0:
        raise ElementError(f"{what} failed: {(run.stdout + run.stderr).strip()}")


def stride(width: int) -> int:
    """GStreamer's row stride of packed RGB (rows padded to 4 bytes)."""
    return (width * 3 + 3) & ~3


def write_raw(frames: np.ndarray, path: Path) -> None:
    count, height, width, _ = frames.shape
    rows = np.zeros((count, height, stride(width)), dtype=np.uint8)
    rows[:, :, : width * 3] = frames.reshape(count, height, width * 3)
    rows.tofile(path)


def read_raw(path: Path, width: int, height: int) -> np.ndarray:
    data = np.fromfile(path, dtype=np.uint8)
    frame_bytes = stride(width) * height
    if data.size % frame_bytes:
        raise ElementError(f"{path} holds {data.size} bytes, not whole {width}x{height} RGB frames")
    rows = data.reshape(-1, height, stride(width))[:, :, : width * 3]
    return np.ascontiguousarray(rows.reshape(-1, height, width, 3))


def outpaint(centre: np.ndarray, mask: Mask, fps, setting: Setting, scratch: Path):
    """The frames the element makes of the kept `centre` [T, h, w, 3] with
    `setting`, and the seconds the element's pipelines took."""
    count, height, width, _ = centre.shape
    source = scratch / "centre.rgb"
    output = scratch / "output.rgb"
    plan = scratch / "keyframes.plan"
    write_raw(centre, source)
    feed = (f'filesrc location="{source}" ! rawvideoparse format=rgb width={width} height={height} '
            f"framerate={fps.numerator}/{fps.denominator}")
    element = f"m3ddmoutpaint aspect=1/1 {setting.launch_properties()}"
    out = f'video/x-raw,format=RGB ! filesink location="{output}"'
    started = time.perf_counter()
    if setting.passes == 2:
        gst_launch(f'{feed} ! {element} write-plan="{plan}" plan-frames={count} ! fakesink',
                   f"the keyframe pass of {setting.name}")
        gst_launch(f'{feed} ! {element} plan-file="{plan}" ! {out}', f"the output pass of {setting.name}")
    else:
        gst_launch(f"{feed} ! {element} ! {out}", setting.name)
    seconds = time.perf_counter() - started
    frames = read_raw(output, mask.size, mask.size)
    if len(frames) != count:
        raise ElementError(f"{setting.name}: {count} frames in, {len(frames)} out")
    if not np.array_equal(mask.centre(frames), centre):
        raise ElementError(f"{setting.name}: the kept centre did not come back bit-exact at offset {mask.side}")
    for stale in (source, output, plan):
        stale.unlink(missing_ok=True)
    return frames, seconds
