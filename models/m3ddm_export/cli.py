"""Command line of the exporter.

    python -m m3ddm_export --unet DIR --vae DIR --out OUT [--precision fp32|fp16] [--canvas 256] [--force]
                           [--triton-repo REPO [TRITON OPTIONS]]
    python -m m3ddm_export --from-hub m3ddm|m3ddm-plus [--out OUT] [--unet-repo R] [--vae-repo R] [--revision REV]
                           [--vae-revision REV] [--precision ...] [--canvas 256] [--force] [--triton-repo ...]
    python -m m3ddm_export --random-tiny SEED --out OUT [--precision ...] [--canvas 128] [--force] [--triton-repo ...]
    python -m m3ddm_export triton-repo --model DIR --out REPO [--force] [TRITON OPTIONS]
    python -m m3ddm_export check-manifest CASE_JSON

TRITON OPTIONS: [--max-batch 8] [--queue-delay-us 1000] [--cpu | --gpus 0,1] [--tensorrt CACHE_DIR]

A refusal is one sentence on stderr and a non-zero exit, never a traceback
(set M3DDM_EXPORT_DEBUG=1 to see the traceback of an unexpected failure).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .config import OFFICIAL_STRIDES, parse_strides
from .errors import ExportError
from .hub import HUB_MODELS, SD15_VAE_REPO, DownloadInterrupted
from .model_dirs import named_model_dir

PROG = "m3ddm_export"
EXIT_REFUSED = 1
EXIT_USAGE = 2


class SentenceParser(argparse.ArgumentParser):
    """argparse whose usage errors are one sentence, like every other refusal."""

    def error(self, message: str):
        print(f"{PROG}: {message[0].upper()}{message[1:]} (see --help).", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def export_parser() -> argparse.ArgumentParser:
    parser = SentenceParser(prog=f"python -m {PROG}",
                            description="Export the M3DDM U-Net and SD VAE to an ONNX model directory.",
                            epilog="Also: python -m m3ddm_export triton-repo --model DIR --out REPO; "
                                   "python -m m3ddm_export check-manifest CASE_JSON")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--unet", type=Path, help="checkpoint directory of the M3DDM U-Net (config.json + weights)")
    source.add_argument("--from-hub", metavar="NAME", choices=sorted(HUB_MODELS),
                        help="download the published checkpoint NAME (m3ddm or m3ddm-plus) and the SD 1.5 VAE "
                             "from the Hugging Face Hub (cache, HF_HOME, HF_TOKEN, HF_ENDPOINT, HF_HUB_OFFLINE "
                             "as huggingface_hub reads them); --out defaults to the named-model directory")
    source.add_argument("--random-tiny", type=int, metavar="SEED",
                        help="write a tiny random-weight model of the same architecture instead")
    parser.add_argument("--vae", type=Path, help="the Stable Diffusion 1.5 VAE directory (config.json + weights)")
    parser.add_argument("--out", type=Path, help="model directory to write (with --from-hub: by default "
                                                  "$M3DDM_MODELS_DIR/NAME, else $XDG_DATA_HOME or ~/.local/share, "
                                                  "then m3ddmoutpaint/models/NAME)")
    hub = parser.add_argument_group("--from-hub")
    hub.add_argument("--unet-repo", help="the U-Net's repository instead of NAME's (owner/name)")
    hub.add_argument("--vae-repo", help=f"the VAE's repository (default {SD15_VAE_REPO})")
    hub.add_argument("--revision", default="main", help="branch, tag or commit of the U-Net's repository (main)")
    hub.add_argument("--vae-revision", default="main", help="branch, tag or commit of the VAE's repository (main)")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp32",
                        help="fp32 graphs for CPU, fp16 for the GPU (default fp32)")
    parser.add_argument("--canvas", type=int, default=None,
                        help="default run canvas recorded in the manifest (256; 128 for --random-tiny)")
    parser.add_argument("--strides", metavar="LIST", default=None,
                        help="default coarse-to-fine strides recorded in the manifest, e.g. 5,3,1 (5,3,1 for "
                             "--from-hub m3ddm-plus as its authors' evaluation runs it, else the official 15,5,1)")
    parser.add_argument("--force", action="store_true", help="overwrite the graphs of an existing output directory")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the ONNX Runtime check of every graph against PyTorch at a second shape")
    parser.add_argument("--triton-repo", type=Path, metavar="REPO",
                        help="also write a Triton model repository for the exported graphs (see triton-repo --help)")
    add_triton_options(parser)
    return parser


def gpu_list(text: str) -> tuple[int, ...]:
    try:
        gpus = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of GPU numbers") from None
    if any(gpu < 0 for gpu in gpus):
        raise argparse.ArgumentTypeError(f"{text!r} has a negative GPU number")
    return gpus


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def add_triton_options(parser: argparse.ArgumentParser) -> None:
    from .triton_repo import DEFAULT_MAX_BATCH, DEFAULT_QUEUE_DELAY_US
    group = parser.add_argument_group("Triton model repository")
    group.add_argument("--max-batch", type=positive_int, default=DEFAULT_MAX_BATCH,
                       help=f"max_batch_size of unet, vae_encoder and vae_decoder (default {DEFAULT_MAX_BATCH})")
    group.add_argument("--queue-delay-us", type=int, default=DEFAULT_QUEUE_DELAY_US,
                       help="how long dynamic batching waits for more requests, in microseconds "
                            f"(default {DEFAULT_QUEUE_DELAY_US})")
    group.add_argument("--gpus", type=gpu_list, default=(), metavar="0,1",
                       help="GPUs to put one instance of each model on (default: every GPU)")
    group.add_argument("--cpu", action="store_true", help="CPU instances instead of GPU ones (fp32 graphs)")
    group.add_argument("--tensorrt", metavar="CACHE_DIR",
                       help="run the graphs through TensorRT in fp16, caching engines in CACHE_DIR/<model> "
                            "(a writable path on the Triton host)")


def triton_options(parser: argparse.ArgumentParser, args: argparse.Namespace):
    from .triton_repo import TritonOptions
    if args.cpu and (args.gpus or args.tensorrt):
        parser.error("--cpu cannot be combined with --gpus or --tensorrt")
    return TritonOptions(max_batch=args.max_batch, queue_delay_us=args.queue_delay_us, cpu=args.cpu,
                         gpus=args.gpus, tensorrt_cache=args.tensorrt)


def write_repo(model_dir: Path, repo: Path, options, force: bool) -> None:
    from .triton_repo import GRAPH_NAMES, write_triton_repo
    placed = write_triton_repo(model_dir, repo, options, force=force)
    print(f"wrote Triton repository {repo}: {', '.join(GRAPH_NAMES)} "
          f"(graphs {' and '.join(sorted(set(placed)))})")


def run_export(argv: list[str]) -> int:
    parser = export_parser()
    args = parser.parse_args(argv)
    repo_options = triton_options(parser, args)
    if args.from_hub is None and (args.unet_repo or args.vae_repo):
        parser.error("--unet-repo and --vae-repo go with --from-hub")
    if args.out is None:
        if args.from_hub is None:
            parser.error("the following arguments are required: --out")
        args.out = named_model_dir(args.from_hub)
    if args.triton_repo is not None and args.triton_repo.exists() and not args.force:
        raise ExportError(f"The output directory {args.triton_repo} already exists; pass --force to overwrite it.")
    if args.from_hub is not None and args.vae is not None:
        raise ExportError("--vae cannot be combined with --from-hub, which downloads the VAE (see --vae-repo).")
    if args.unet is not None and args.vae is None:
        raise ExportError("--vae is required with --unet (the Stable Diffusion 1.5 VAE directory).")
    if args.random_tiny is not None and args.vae is not None:
        raise ExportError("--vae cannot be combined with --random-tiny, which makes its own VAE.")
    if args.out.exists() and not args.force:
        raise ExportError(f"The output directory {args.out} already exists; pass --force to overwrite it.")
    strides = model_strides(args)
    import torch  # imported late so that usage errors are quick

    from .checkpoint import load_unet, load_vae
    from .export import export_model, source_entry
    from .tiny import TINY_CANVAS, random_tiny

    torch.set_grad_enabled(False)
    if args.random_tiny is not None:
        unet, conf, vae, vae_config = random_tiny(args.random_tiny)
        sources = source_entry(None, None, args.random_tiny)
        canvas = args.canvas or TINY_CANVAS
    elif args.from_hub is not None:
        unet, conf, vae, vae_config, sources = load_from_hub(args)
        canvas = args.canvas or 256
    else:
        unet, conf, unet_source = load_unet(args.unet)
        vae, vae_config, vae_source = load_vae(args.vae)
        sources = source_entry(unet_source, vae_source, None)
        canvas = args.canvas or 256
    export_model(unet, conf, vae, vae_config, args.out, precision=args.precision, canvas=canvas,
                 strides=strides, force=args.force, sources=sources, verify=not args.no_verify)
    print(f"wrote {args.out} ({args.precision}, canvas {canvas}, strides {','.join(map(str, strides))})")
    if args.triton_repo is not None:
        write_repo(args.out, args.triton_repo, repo_options, args.force)
    return 0


def model_strides(args: argparse.Namespace) -> tuple[int, ...]:
    """--strides, else the hub model's own, else the official list."""
    if args.strides is not None:
        return parse_strides(args.strides)
    return HUB_MODELS[args.from_hub].strides if args.from_hub is not None else OFFICIAL_STRIDES


def load_from_hub(args: argparse.Namespace):
    """Downloads (or finds in the cache) the checkpoints of --from-hub and loads them."""
    from .checkpoint import load_unet, load_vae
    from .export import source_entry
    from .hub import fetch_checkpoints
    model = HUB_MODELS[args.from_hub]
    unet_dir, vae_dir = fetch_checkpoints(args.unet_repo or model.unet_repo, args.vae_repo or model.vae_repo,
                                          args.revision, args.vae_revision, args.precision, args.out)
    unet, conf, unet_source = load_unet(unet_dir.directory, unet_dir.weights)
    vae, vae_config, vae_source = load_vae(vae_dir.directory, vae_dir.weights)
    unet_source.hub, vae_source.hub = unet_dir.provenance, vae_dir.provenance
    sources = source_entry(unet_source, vae_source, None)
    sources["model"] = args.from_hub
    return unet, conf, vae, vae_config, sources


def run_triton_repo(argv: list[str]) -> int:
    parser = SentenceParser(prog=f"python -m {PROG} triton-repo",
                            description="Write a Triton model repository (onnxruntime backend) for an exported "
                                        "model directory: NAME/config.pbtxt and NAME/1/model.onnx per graph.")
    parser.add_argument("--model", type=Path, required=True, help="exported model directory (with manifest.json)")
    parser.add_argument("--out", type=Path, required=True, help="repository directory to write")
    parser.add_argument("--force", action="store_true",
                        help="write into an existing directory (the four models are replaced, others are left alone)")
    add_triton_options(parser)
    args = parser.parse_args(argv)
    write_repo(args.model, args.out, triton_options(parser, args), args.force)
    return 0


def run_check_manifest(argv: list[str]) -> int:
    parser = SentenceParser(prog=f"python -m {PROG} check-manifest",
                            description="Compare the U-Net built from a manifest case's config with the case.")
    parser.add_argument("case", type=Path, help="the case.json of a 'manifest' conformance case")
    args = parser.parse_args(argv)
    from .manifest_case import check_manifest_case
    ok, line = check_manifest_case(args.case)
    print(line)
    return 0 if ok else EXIT_REFUSED


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] == "check-manifest":
            return run_check_manifest(argv[1:])
        if argv and argv[0] == "triton-repo":
            return run_triton_repo(argv[1:])
        return run_export(argv)
    except DownloadInterrupted as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 130
    except ExportError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        print(f"{PROG}: Interrupted.", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"{PROG}: Out of memory (the full model needs about 16 GB of RAM to export).", file=sys.stderr)
        return EXIT_REFUSED
    except OSError as err:
        print(f"{PROG}: {err.strerror or err} ({err.filename or 'no file name'}).", file=sys.stderr)
        return EXIT_REFUSED
    except Exception as err:  # a bug: still one line unless debugging
        if os.environ.get("M3DDM_EXPORT_DEBUG"):
            raise
        print(f"{PROG}: Unexpected failure ({type(err).__name__}: {err}); "
              "run with M3DDM_EXPORT_DEBUG=1 for the traceback.", file=sys.stderr)
        return EXIT_REFUSED
