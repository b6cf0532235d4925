"""Times the graphs of one or more model directories in ONNX Runtime (CPU EP), interleaved.

    python -m m3ddm_export.bench_graphs DIR [LABEL=DIR ...] [--latent 16] [--reps 5]
        [--calls unet1,unet3,global,vae_enc,vae_dec] [--threads N]

Every call of every directory runs once per repetition, in turn (A, B, A, B, ...), so that
a busy machine slows all variants alike; the table gives min and median seconds per call.
The U-Net gets 16-frame samples at the given latent size and, as the engine does, the
context made by the same directory's global encoder. Sessions are set up as the engine
sets them up (`ORT_ENABLE_ALL`, intra-op threads = cores, one inter-op thread).

On a machine shared with other work, wall times swing; `--no-spin` stops ONNX Runtime's
idle threads from spinning, so that the process CPU seconds (also printed) count the work
of a call and compare variants more steadily than wall time.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from .cli import SentenceParser

CALLS = ("unet1", "unet3", "global", "vae_enc", "vae_dec")
GRAPH_OF_CALL = {"unet1": "unet", "unet3": "unet", "global": "global_encoder",
                 "vae_enc": "vae_encoder", "vae_dec": "vae_decoder"}
WINDOW_FRAMES = 16


def session(path: Path, threads: int, spinning: bool):
    import onnxruntime as ort
    options = ort.SessionOptions()
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def float_type(sess) -> type:
    return np.float16 if "float16" in sess.get_inputs()[0].type else np.float32


def call_feeds(sessions: dict, latent: int, rng: np.random.Generator) -> dict:
    """The inputs of every call; the U-Net context comes from the directory's own global encoder."""
    def normal(*shape, dtype):
        return rng.standard_normal(shape, dtype=np.float32).astype(dtype)

    encoder = sessions["global_encoder"]
    dtype = float_type(encoder)
    global_latents = normal(WINDOW_FRAMES, 4, latent, latent, dtype=dtype)
    context = encoder.run(None, {"global_latents": global_latents})[0]
    feeds = {"global": {"global_latents": global_latents},
             "vae_enc": {"images": rng.uniform(-1, 1, (WINDOW_FRAMES, 3, 8 * latent, 8 * latent)).astype(dtype)},
             "vae_dec": {"latents": normal(WINDOW_FRAMES, 4, latent, latent, dtype=dtype)}}
    for call, batch in (("unet1", 1), ("unet3", 3)):
        feeds[call] = {"sample": normal(batch, 9, WINDOW_FRAMES, latent, latent, dtype=dtype),
                       "timestep": np.full(batch, 901, np.int64), "fps": np.full(batch, 30, np.int64),
                       "context": np.repeat(context, batch, axis=0)}
    return feeds


def parse_variant(text: str) -> tuple[str, Path]:
    label, _, path = text.rpartition("=")
    path = Path(path)
    return (label or path.name), path


def main(argv: list[str] | None = None) -> int:
    parser = SentenceParser(prog="python -m m3ddm_export.bench_graphs", description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="model directories, optionally LABEL=DIR")
    parser.add_argument("--latent", type=int, default=16, help="latent side (16 = canvas 128)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", default=",".join(CALLS), help=f"comma-separated subset of {','.join(CALLS)}")
    parser.add_argument("--no-spin", action="store_true", help="idle intra-op threads sleep instead of spinning")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="intra-op threads (default: cores)")
    args = parser.parse_args(argv)
    calls = [c for c in args.calls.split(",") if c]
    unknown = [c for c in calls if c not in CALLS]
    if unknown:
        print(f"bench_graphs: unknown call {unknown[0]!r} (choose from {', '.join(CALLS)}).", file=sys.stderr)
        return 2
    variants = [parse_variant(v) for v in args.variants]
    for label, path in variants:
        if not (path / "manifest.json").is_file():
            print(f"bench_graphs: {path} is not a model directory (no manifest.json).", file=sys.stderr)
            return 1
    setups = {}
    for label, path in variants:
        graphs = {GRAPH_OF_CALL[call] for call in calls} | {"global_encoder"}
        sessions = {g: session(path / f"{g}.onnx", args.threads, not args.no_spin) for g in graphs}
        setups[label] = (sessions, call_feeds(sessions, args.latent, np.random.default_rng(0)))
    times = {(label, call): [] for label, _ in variants for call in calls}
    cpu_times = {key: [] for key in times}
    for rep in range(args.reps + 1):  # the first round warms up and is not counted
        for call in calls:
            for label, _ in variants:
                sessions, feeds = setups[label]
                start, cpu_start = time.perf_counter(), time.process_time()
                sessions[GRAPH_OF_CALL[call]].run(None, feeds[call])
                if rep:
                    times[(label, call)].append(time.perf_counter() - start)
                    cpu_times[(label, call)].append(time.process_time() - cpu_start)
    print(f"# latents {args.latent}x{args.latent}, {args.threads} intra-op threads, {args.reps} reps; "
          "seconds per call, min / median; process CPU seconds, min")
    width = max(len(label) for label, _ in variants)
    for call in calls:
        for label, _ in variants:
            t = times[(label, call)]
            print(f"{call:8s} {label:{width}s} min {min(t):.4f}  median {statistics.median(t):.4f}  "
                  f"cpu {min(cpu_times[(label, call)]):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
