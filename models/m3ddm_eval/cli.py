# SPDX-License-Identifier: MPL-2.0
"""`python -m m3ddm_eval DATA [--frames N] [--ratio R ...] [--direction D]
[--setting "k=v ..."] [--model DIR] [--alexnet PATH] [--i3d PATH] [--out DIR]`:
every clip of DATA through every setting at every mask ratio, scored, with a
progress bar over the whole run; the table printed and written to
OUT/results.md and OUT/results.csv, a contact sheet per clip in OUT."""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import metrics, weights
from .clips import find_clips, read_clip
from .element import ElementError, outpaint
from .masks import DIRECTIONS, Mask
from .report import Results, contact_sheet
from .settings import BASELINES, parse_setting

SIZE = 256
SHEET_FRAMES = 4


def arguments(argv):
    parser = argparse.ArgumentParser(
        prog="python -m m3ddm_eval",
        description="The video-outpainting papers' protocol through the m3ddmoutpaint element: "
                    "PSNR, SSIM, LPIPS and FVD over the whole frame and over the generated area.")
    parser.add_argument("data", type=Path, help="a folder of video files and/or folders of numbered frames")
    parser.add_argument("--out", type=Path, default=Path("eval-out"), help="where the tables and sheets go")
    parser.add_argument("--frames", type=int, default=0, help="the first N frames of each clip (0: all)")
    parser.add_argument("--ratio", type=float, action="append", dest="ratios",
                        help="a mask ratio (repeatable; default 0.25 and 0.66)")
    parser.add_argument("--direction", choices=DIRECTIONS, default="horizontal")
    parser.add_argument("--setting", action="append", default=[],
                        help='an outpainting row: element properties and model=DIR, passes=1|2, name=LABEL, '
                             'e.g. "steps=20 scheduler=dpmsolver++" (repeatable)')
    parser.add_argument("--model", help="the model of settings that name none")
    parser.add_argument("--alexnet", help=f"LPIPS's AlexNet weights ({weights.ALEXNET_FILE})")
    parser.add_argument("--i3d", help=f"FVD's I3D network ({weights.I3D_FILE}, TorchScript)")
    args = parser.parse_args(argv)
    if args.frames < 0:
        parser.error("--frames is 0 (all) or more")
    args.ratios = args.ratios or [0.25, 0.66]
    return args


def main(argv=None) -> int:
    args = arguments(argv if argv is not None else sys.argv[1:])
    try:
        settings = BASELINES + [parse_setting(text, args.model) for text in args.setting]
        masks = [Mask.of(r, args.direction, SIZE) for r in args.ratios]
    except ValueError as err:
        print(f"m3ddm_eval: {err}", file=sys.stderr)
        return 2
    names = [s.name for s in settings]
    if len(set(names)) != len(names):
        print("m3ddm_eval: two settings have the same name (add name=...)", file=sys.stderr)
        return 2
    clips = find_clips(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    results = Results(names, [m.label() for m in masks])
    lpips_net, i3d_net = load_networks(args, results)
    features = {}  # (setting or "truth", ratio, scope) -> list of feature rows
    progress = tqdm(total=len(clips) * len(masks) * len(settings), unit="run", file=sys.stderr)
    per_clip = {}  # (setting, ratio, metric, scope) -> list of clip values
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for clip in clips:
                truth = read_clip(clip, SIZE, args.frames)
                picks = np.linspace(0, len(truth) - 1, min(SHEET_FRAMES, len(truth))).round().astype(int)
                sheet = {}
                for mask in masks:
                    ratio = mask.label()
                    if i3d_net:
                        collect(features, ("truth", ratio), i3d_net, truth, mask)
                    for setting in settings:
                        progress.set_description(f"{clip.name} {ratio} {setting.name}"[:60])
                        made, seconds = outpaint(mask.centre(truth), mask, clip.fps, setting, Path(scratch))
                        results.seconds[setting.name] += seconds
                        results.frames[setting.name] += len(made)
                        for (metric, scope), value in score(truth, made, mask, lpips_net).items():
                            per_clip.setdefault((setting.name, ratio, metric, scope), []).append(value)
                        if i3d_net:
                            collect(features, (setting.name, ratio), i3d_net, made, mask)
                        sheet[f"{setting.name} @ {ratio}"] = made[picks]
                        progress.update()
                contact_sheet(args.out / f"{clip.name}.png", truth[picks], sheet, range(len(picks)))
    except ElementError as err:
        progress.close()
        print(f"m3ddm_eval: {err}", file=sys.stderr)
        return 1
    progress.close()
    for (setting, ratio, metric, scope), values in per_clip.items():
        results.set(setting, ratio, metric, scope, float(np.mean(values)))
    for setting in names:
        for mask in masks:
            for scope in ("frame", "region"):
                value = None
                if i3d_net:
                    value = metrics.frechet_distance(np.stack(features[(setting, mask.label(), scope)]),
                                                     np.stack(features[("truth", mask.label(), scope)]))
                results.set(setting, mask.label(), "fvd", scope, value)
    table = results.markdown()
    print(table)
    (args.out / "results.md").write_text(table)
    results.write_csv(args.out / "results.csv")
    print(f"wrote {args.out / 'results.md'}, {args.out / 'results.csv'} and "
          f"{len(clips)} contact sheet{'s' if len(clips) != 1 else ''} in {args.out}", file=sys.stderr)
    return 0


def load_networks(args, results):
    found = weights.alexnet(args.alexnet)
    lpips_net = metrics.Lpips(found.path) if found.path else None
    if found.absent:
        results.absent["LPIPS"] = found.absent
    found = weights.i3d(args.i3d)
    i3d_net = metrics.I3dFeatures(found.path) if found.path else None
    if found.absent:
        results.absent["FVD"] = found.absent
    return lpips_net, i3d_net


def score(truth, made, mask, lpips_net) -> dict:
    scores = {
        ("psnr", "frame"): metrics.psnr(truth, made),
        ("psnr", "region"): metrics.region_psnr(truth, made, mask),
        ("ssim", "frame"): metrics.ssim(truth, made),
        ("ssim", "region"): metrics.region_ssim(truth, made, mask),
    }
    if lpips_net:
        scores[("lpips", "frame")] = lpips_net(truth, made)
        scores[("lpips", "region")] = lpips_net.region(truth, made, mask)
    return scores


def collect(features, key, i3d_net, frames, mask):
    features.setdefault((*key, "frame"), []).append(i3d_net(frames))
    features.setdefault((*key, "region"), []).append(i3d_net(mask.band_image(frames)))
