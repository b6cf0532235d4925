"""Times one 16-frame window in eager PyTorch, with the official pipeline's arithmetic (the anchor of `make bench`).

    python -m m3ddm_export.bench_window --case ../shared/golden/window-tiny-a \\
        --model ../shared/golden/tiny-model-a [--steps 10] [--reps 3]

The U-Net is this project's module (unet3d.py) and the VAE diffusers' AutoencoderKL, both
loaded from the checkpoint as the exporter loads them; the scheduler is diffusers'
PNDMScheduler with the manifest's configuration. Per window, as the official pipeline runs
it (../shared/golden/README.md): VAE posterior means of the init, masked and global frames
and of an all -1 image (scaled), noise added at the first timestep, then per step a 4-item
guidance batch `[uncond, masked, uncond, masked]` with contexts `[enc(0), enc(0),
enc(global), enc(global)]`, the global encoder run at every step on the 4 x 16 global
latents, eps = e0 + g(e1 - e0) + G(e3 - e1) and one scheduler step; finally the VAE decodes
the 16 frames. Guide frames take the case's guide latents as condition and mask 0.

Prints one line per repetition, `torch_window rep=N seconds=S` (the window alone: no
imports, no model loading), then the final latents' max abs difference from the case's
`final_latents`; exits 1 when it exceeds the cases' 5e-3. PyTorch uses its default
intra-op threads (all cores), printed on the first line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .cli import SentenceParser

CASE_TOLERANCE = 5e-3
GLOBAL_FRAMES = 16


def unit(pixels_u8):
    """The official pixel normalisation `(u8/255 - 0.5)/0.5`, float32."""
    import torch
    return (torch.from_numpy(pixels_u8).float() / 255.0 - 0.5) / 0.5


def load_case(case_dir: Path) -> tuple[dict, dict]:
    from safetensors.numpy import load_file
    case_file, tensors_file = case_dir / "case.json", case_dir / "tensors.safetensors"
    if not case_file.is_file() or not tensors_file.is_file():
        raise SystemExit(f"bench_window: {case_dir} is not a conformance case (no case.json and tensors.safetensors).")
    case = json.loads(case_file.read_text())
    if case.get("kind") != "window":
        raise SystemExit(f"bench_window: {case_dir} is a {case.get('kind')!r} case, not a window case.")
    return case, load_file(str(tensors_file))


class Window:
    """One window's inputs, in the layouts the modules take."""

    def __init__(self, case: dict, tensors: dict):
        import torch
        self.case = case
        self.init_frames = unit(tensors["init_frames_u8"]).permute(1, 0, 2, 3).contiguous()  # [16,3,C,C]
        self.masked_frames = unit(tensors["masked_frames_u8"]).permute(1, 0, 2, 3).contiguous()
        self.global_frames = unit(tensors["global_frames_u8"])
        self.pixel_mask = torch.from_numpy(tensors["mask"])
        self.guide_latents = torch.from_numpy(tensors["guide_latents"])
        self.noise = torch.from_numpy(tensors["noise"])
        self.expected_latents = torch.from_numpy(tensors["final_latents"])


def encode(vae, images, scale: float):
    """Scaled posterior means `[n,4,h,w]` of images `[n,3,H,W]`."""
    return vae.encode(images).latent_dist.mean * scale


def global_contexts(encoder, global_latents):
    """The official 4-way global context `[enc(0), enc(0), enc(global), enc(global)]` as `[4,T,D]`."""
    import torch
    latents = torch.cat([torch.zeros_like(global_latents)] * 2 + [global_latents] * 2)
    features = encoder(latents)  # [4*16, D, h', w'], tokens ordered (frame, row, column) per item
    return features.permute(0, 2, 3, 1).reshape(4, -1, features.shape[1])


def to_video(latents):
    """Frame latents `[16,4,h,w]` -> video latents `[1,4,16,h,w]`."""
    return latents.permute(1, 0, 2, 3).unsqueeze(0)


def run_window(unet, vae, scheduler, window: Window, steps: int, scale: float):
    """The official pipeline on one window; returns (final scaled latents [1,4,16,h,w], images [16,C,C,3])."""
    import torch
    import torch.nn.functional as F
    case = window.case
    g, big_g = case["guidance_scale"], case["global_guidance_scale"]
    frames = window.init_frames.shape[0]
    init = to_video(encode(vae, window.init_frames, scale))
    masked = to_video(encode(vae, window.masked_frames, scale))
    uncond = to_video(encode(vae, -torch.ones_like(window.init_frames[:1]), scale).expand(frames, -1, -1, -1))
    global_latents = encode(vae, window.global_frames, scale)
    h, w = init.shape[-2:]
    mask = F.interpolate(window.pixel_mask, size=(h, w)).unsqueeze(2).expand(1, 1, frames, h, w)
    ones = torch.ones_like(mask)
    masked, uncond, mask, ones = masked.clone(), uncond.clone(), mask.clone(), ones.clone()
    for f in case["guide_frames"]:
        masked[:, :, f] = uncond[:, :, f] = window.guide_latents[f]
        mask[:, :, f] = ones[:, :, f] = 0.0
    conditions = torch.cat([torch.cat([uncond, ones], 1), torch.cat([masked, mask], 1)] * 2)  # [4,5,16,h,w]

    # Strength 1.0 as the official img2img schedule has it: noise at timesteps[-steps], then
    # the loop over timesteps[steps_offset:] (PNDM's list has steps + 1 entries).
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps
    start = len(timesteps) - steps
    latents = scheduler.add_noise(init, window.noise, timesteps[start:start + 1])
    fps = torch.full((4,), int(case["fps"]), dtype=torch.long)
    for t in timesteps[scheduler.config.steps_offset:]:
        contexts = global_contexts(unet.global_img_encoder, global_latents)
        sample = torch.cat([scheduler.scale_model_input(torch.cat([latents] * 4), t), conditions], 1)
        e0, e1, _, e3 = unet(sample, torch.full((4,), int(t), dtype=torch.long), fps, contexts).chunk(4)
        eps = e0 + g * (e1 - e0) + big_g * (e3 - e1)
        latents = scheduler.step(eps, t, latents).prev_sample
    decoded = vae.decode(latents[0].permute(1, 0, 2, 3) / scale).sample
    return latents, (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)


def main(argv: list[str] | None = None) -> int:
    parser = SentenceParser(prog="python -m m3ddm_export.bench_window",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--case", type=Path, required=True, help="a `window` conformance case directory")
    parser.add_argument("--model", type=Path, required=True, help="checkpoint directory with unet/ and vae/")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: the case's)")
    parser.add_argument("--reps", type=int, default=1, help="windows to time (default 1)")
    args = parser.parse_args(argv)
    if args.reps < 1 or (args.steps is not None and args.steps < 1):
        parser.error("--reps and --steps must be at least 1")
    case, tensors = load_case(args.case)
    steps = args.steps or case["steps"]

    import torch
    from diffusers import PNDMScheduler

    from .checkpoint import load_unet, load_vae
    from .errors import ExportError
    from .export import LATENT_SCALE, SCHEDULER_CONFIG

    torch.set_grad_enabled(False)
    try:
        unet, _, _ = load_unet(args.model / "unet")
        vae, _, _ = load_vae(args.model / "vae")
    except ExportError as err:
        print(f"bench_window: {err}", file=sys.stderr)
        return 1
    scheduler = PNDMScheduler(**SCHEDULER_CONFIG)
    window = Window(case, tensors)
    print(f"torch_window threads={torch.get_num_threads()} steps={steps} case={args.case.name}", flush=True)
    for rep in range(1, args.reps + 1):
        start = time.perf_counter()
        latents, images = run_window(unet, vae, scheduler, window, steps, LATENT_SCALE)
        print(f"torch_window rep={rep} seconds={time.perf_counter() - start:.3f}", flush=True)
    error = float((latents - window.expected_latents).abs().max())
    if steps != case["steps"]:
        print(f"torch_window final_latents max_abs_err={error:.3g} "
              f"(not comparable: the case ran {case['steps']} steps)")
        return 0
    image_error = float((images - torch.from_numpy(tensors["images"]).float()).abs().max())
    print(f"torch_window final_latents max_abs_err={error:.3g} images max_abs_err={image_error:.3g}")
    if error > CASE_TOLERANCE:
        print(f"bench_window: the final latents differ from the case by {error:.3g} (> {CASE_TOLERANCE}).",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
