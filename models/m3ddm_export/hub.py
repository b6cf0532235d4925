"""Published checkpoints from the Hugging Face Hub (`--from-hub NAME`, `make model`).

Only the files the export reads are fetched, through `huggingface_hub` (its cache, progress
bars, resumption of an interrupted download, and its HF_HOME, HF_TOKEN, HF_ENDPOINT and
HF_HUB_OFFLINE settings): the U-Net's config.json and one weights file, at the repository's
root or in unet/, and the VAE's vae/config.json and one weights file. Before anything is
downloaded the plan is printed (files, sizes, licences) and the free disk is checked.
Offline, the same files are resolved in the local cache by huggingface_hub itself.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .config import OFFICIAL_STRIDES
from .errors import ExportError

SD15_VAE_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"


@dataclass(frozen=True)
class HubModel:
    """A model that `--from-hub NAME` knows: where its U-Net and VAE are published."""

    name: str
    unet_repo: str
    vae_repo: str
    # Licences as the repositories publish them, shown when the model card cannot be read.
    unet_licence: str
    vae_licence: str
    # The coarse-to-fine strides its authors run (the manifest's `strides`, the element's default).
    strides: tuple[int, ...] = OFFICIAL_STRIDES


HUB_MODELS = {
    "m3ddm": HubModel("m3ddm", "alimama-creative/M3DDM-Video-Outpainting", SD15_VAE_REPO,
                      "apache-2.0", "creativeml-openrail-m"),
    # tamaki-lab/M3DDM-Plus `src/evaluate.py` (its measurements) runs 5,3,1; its `src/inference.py`
    # defaults to the official 15,5,1 (README "M3DDM+ and what differs from its own inference").
    "m3ddm-plus": HubModel("m3ddm-plus", "MurakawaTakuya/M3DDM-Plus", SD15_VAE_REPO,
                           "apache-2.0", "creativeml-openrail-m", strides=(5, 3, 1)),
}
def published_licence(repo: str) -> str | None:
    """The licence a known repository publishes (for when its model card cannot be read)."""
    for model in HUB_MODELS.values():
        for known, licence in ((model.unet_repo, model.unet_licence), (model.vae_repo, model.vae_licence)):
            if known == repo:
                return f"{licence}, as published (the model card was not read)"
    return None


# Weight files in order of preference: safetensors (no pickle) before .bin, and the
# repository's full-precision file before its fp16 variant unless fp16 graphs are made.
FULL_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
FP16_WEIGHTS = ("diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.fp16.bin")
UNET_FOLDERS = ("", "unet/")
VAE_FOLDERS = ("vae/",)
# The published checkpoints are fp16: an fp32 export writes about twice the U-Net's
# download, an fp16 one about as much; the tracer's scratch copy of the largest graph too.
OUTPUT_FACTOR = {"fp32": 2.0, "fp16": 1.0}
SLACK_BYTES = 200_000_000


def weight_candidates(precision: str) -> tuple[str, ...]:
    return FP16_WEIGHTS + FULL_WEIGHTS if precision == "fp16" else FULL_WEIGHTS + FP16_WEIGHTS


@dataclass
class RepoPart:
    """One checkpoint directory inside a repository: its config and the weights file chosen."""

    what: str  # "U-Net" or "VAE"
    repo: str
    revision: str
    folder: str
    weights: str
    sizes: dict[str, int | None] = field(default_factory=dict)
    licence: str = "unknown"
    commit: str | None = None
    # sha256 the hub lists for its LFS files (online only): the downloads are checked against it.
    listed_sha256: dict[str, str] = field(default_factory=dict)

    @property
    def files(self) -> list[str]:
        return [self.folder + "config.json", self.folder + self.weights]


def human_size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def hub_errors():
    from huggingface_hub import errors
    return errors


def describe_hub_error(err: Exception, repo: str, revision: str, filename: str | None = None) -> str:
    """One sentence for what huggingface_hub raised while reading `repo`."""
    import requests
    from huggingface_hub import constants, get_token
    errors = hub_errors()
    where = f"{repo} (revision {revision}) on {constants.ENDPOINT}"
    status = getattr(getattr(err, "response", None), "status_code", None)
    if isinstance(err, errors.GatedRepoError):
        return (f"{repo} is gated: accept its conditions on its Hugging Face page, then set HF_TOKEN "
                "to a token of that account.")
    if isinstance(err, errors.RepositoryNotFoundError):
        if status == 401 and get_token():
            return f"The hub refused the token (HF_TOKEN or the saved login) for {where}: it is not valid."
        return (f"The repository {where} was not found (if it is private or gated, set HF_TOKEN "
                "to a token that may read it).")
    if isinstance(err, errors.RevisionNotFoundError):
        return f"The revision {revision} of {repo} does not exist on {constants.ENDPOINT}."
    if isinstance(err, errors.EntryNotFoundError):
        return f"{repo} has no file {filename} at revision {revision} on {constants.ENDPOINT}."
    if isinstance(err, errors.LocalEntryNotFoundError):
        return (f"{filename or 'The files'} of {repo} (revision {revision}) is not in the Hugging Face cache "
                f"{constants.HF_HUB_CACHE}, and downloading is off (HF_HUB_OFFLINE) or the hub "
                f"at {constants.ENDPOINT} cannot be reached.")
    if isinstance(err, errors.HfHubHTTPError):
        if status == 401:
            return f"The hub refused the token (HF_TOKEN or the saved login) for {where}: it is not valid."
        if status == 403:
            return f"The token (HF_TOKEN) may not read {where} (403 Forbidden)."
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"The hub at {constants.ENDPOINT} failed for {repo}: {first}."
    if isinstance(err, (requests.ConnectionError, requests.Timeout)):
        return (f"The hub at {constants.ENDPOINT} cannot be reached ({type(err).__name__}); check the network, "
                "or set HF_HUB_OFFLINE=1 to use the files already in the cache.")
    return f"Reading {where} failed ({type(err).__name__}: {err})."


def card_licence(card_data) -> str | None:
    if card_data is None:
        return None
    licence = getattr(card_data, "license", None)
    return str(licence) if licence else None


def cached_readme_licence(repo: str, revision: str) -> str | None:
    """The `license:` of a model card already in the cache (offline)."""
    from huggingface_hub import try_to_load_from_cache
    path = try_to_load_from_cache(repo, "README.md", revision=revision)
    if not isinstance(path, str):
        return None
    text = Path(path).read_text(errors="replace")
    if not text.startswith("---"):
        return None
    for line in text.split("---", 2)[1].splitlines():
        if line.strip().startswith("license:"):
            return line.split(":", 1)[1].strip() or None
    return None


def choose_part(what: str, repo: str, revision: str, folders, present, precision: str) -> RepoPart:
    """The first folder (in `folders`) with a config.json and a weights file, by preference."""
    for folder in folders:
        if not present(folder + "config.json"):
            continue
        for weights in weight_candidates(precision):
            if present(folder + weights):
                return RepoPart(what, repo, revision, folder, weights)
    places = " or ".join(folder or "the root" for folder in folders)
    raise ExportError(f"{repo} (revision {revision}) has no {what} checkpoint: a config.json with a "
                      f"diffusion_pytorch_model(.fp16).safetensors or .bin was looked for at {places}.")


def plan_online(api, what: str, repo: str, revision: str, folders, precision: str) -> RepoPart:
    info = api.model_info(repo, revision=revision, files_metadata=True)
    siblings = {s.rfilename: s for s in info.siblings or []}
    part = choose_part(what, repo, revision, folders, siblings.__contains__, precision)
    part.sizes = {name: siblings[name].size for name in part.files}
    part.listed_sha256 = {name: siblings[name].lfs.sha256 for name in part.files if siblings[name].lfs}
    part.licence = card_licence(info.card_data) or published_licence(repo) or "not stated on the model card"
    part.commit = info.sha
    return part


def plan_offline(what: str, repo: str, revision: str, folders, precision: str) -> RepoPart:
    from huggingface_hub import constants, try_to_load_from_cache

    def present(name: str) -> bool:
        return isinstance(try_to_load_from_cache(repo, name, revision=revision), str)

    if not any(present(folder + "config.json") for folder in folders):
        raise ExportError(f"The {what} of {repo} (revision {revision}) is not in the Hugging Face cache "
                          f"{constants.HF_HUB_CACHE}, and HF_HUB_OFFLINE forbids downloading it.")
    part = choose_part(what, repo, revision, folders, present, precision)
    paths = [Path(try_to_load_from_cache(repo, name, revision=revision)) for name in part.files]
    part.sizes = {name: path.stat().st_size for name, path in zip(part.files, paths)}
    part.licence = cached_readme_licence(repo, revision) or published_licence(repo) or "model card not in the cache"
    part.commit = snapshot_commit(paths[0])
    return part


def snapshot_commit(path: Path) -> str | None:
    """The commit of a file in the cache: .../snapshots/<commit>/<file>."""
    parts = path.parts
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts else None


def plan_part(what: str, repo: str, revision: str, folders, precision: str) -> RepoPart:
    from huggingface_hub import HfApi, constants
    errors = hub_errors()
    try:
        if constants.HF_HUB_OFFLINE:
            return plan_offline(what, repo, revision, folders, precision)
        return plan_online(HfApi(), what, repo, revision, folders, precision)
    except ExportError:
        raise
    except Exception as err:  # huggingface_hub and requests raise many types; each gets a sentence
        if isinstance(err, errors.HFValidationError):
            raise ExportError(f"{repo!r} is not a Hugging Face repository name (owner/name).") from None
        raise ExportError(describe_hub_error(err, repo, revision)) from None


def missing_bytes(part: RepoPart) -> int:
    """Bytes still to download for a part (files already complete in the cache count 0)."""
    from huggingface_hub import try_to_load_from_cache
    total = 0
    for name in part.files:
        if not isinstance(try_to_load_from_cache(part.repo, name, revision=part.revision), str):
            total += part.sizes.get(name) or 0
    return total


def existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def check_disk(needs: list[tuple[str, Path, int]]) -> None:
    """Refuses when a disk has less free room than the bytes that will be written to it."""
    per_disk: dict[int, list[tuple[str, Path, int]]] = {}
    for what, path, size in needs:
        where = existing_parent(path)
        per_disk.setdefault(where.stat().st_dev, []).append((what, where, size))
    for entries in per_disk.values():
        wanted = sum(size for _, _, size in entries) + SLACK_BYTES
        free = shutil.disk_usage(entries[0][1]).free
        if free < wanted:
            listed = ", ".join(f"{what} {human_size(size)} in {path}" for what, path, size in entries if size)
            raise ExportError(f"Not enough free disk space: {listed} need {human_size(wanted)} with a margin, "
                              f"but that disk has {human_size(free)} free.")


def print_plan(parts: list[RepoPart], to_download: int) -> None:
    from huggingface_hub import constants
    source = "the local cache (HF_HUB_OFFLINE)" if constants.HF_HUB_OFFLINE else constants.ENDPOINT
    print(f"from {source}, cache {constants.HF_HUB_CACHE}:", file=sys.stderr)
    for part in parts:
        commit = f" at {part.commit[:12]}" if part.commit else ""
        print(f"  {part.what}: {part.repo} (revision {part.revision}{commit}), licence: {part.licence}",
              file=sys.stderr)
        for name in part.files:
            print(f"    {name}  {human_size(part.sizes.get(name))}", file=sys.stderr)
    print(f"  to download: {human_size(to_download)}", file=sys.stderr, flush=True)


class DownloadInterrupted(ExportError):
    """Ctrl-C during a download: what was fetched stays in the cache for the next run."""


def download_part(part: RepoPart) -> Path:
    """Fetches (or, offline, resolves) the part's files; returns its directory in the cache snapshot."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    paths = []
    for name in part.files:
        if not isinstance(try_to_load_from_cache(part.repo, name, revision=part.revision), str):
            # A line for logs; on a terminal huggingface_hub draws the progress bar under it.
            print(f"downloading {part.repo}/{name} ({human_size(part.sizes.get(name))})", file=sys.stderr, flush=True)
        try:
            paths.append(Path(hf_hub_download(part.repo, name, revision=part.revision)))
        except KeyboardInterrupt:
            raise DownloadInterrupted(f"Interrupted while downloading {name} of {part.repo}; what arrived stays "
                                      "in the cache, so the same command resumes the download.") from None
        except Exception as err:  # see plan_part
            raise ExportError(describe_hub_error(err, part.repo, part.revision, name)) from None
    part.commit = snapshot_commit(paths[0]) or part.commit
    return paths[0].parent


@dataclass
class Fetched:
    """A downloaded U-Net or VAE: its directory, the weights file, and provenance for the manifest."""

    directory: Path
    weights: Path
    provenance: dict


def provenance(part: RepoPart, directory: Path) -> dict:
    """Where the part came from, each file's size and sha256 (checked against the hub's listing)."""
    from huggingface_hub import constants

    from .checkpoint import sha256_of
    files = {}
    for name in part.files:
        path = directory / Path(name).name
        files[name] = {"size": path.stat().st_size, "sha256": sha256_of(path)}
        listed = part.listed_sha256.get(name)
        if listed and listed != files[name]["sha256"]:
            raise ExportError(f"The downloaded {name} of {part.repo} has sha256 {files[name]['sha256']}, but the hub "
                              f"lists {listed}; delete {path.resolve()} from the cache and run again.")
    return {"endpoint": constants.ENDPOINT, "repo": part.repo, "revision": part.revision, "commit": part.commit,
            "licence": part.licence,
            "files": files}


def fetch_checkpoints(unet_repo: str, vae_repo: str, revision: str, vae_revision: str, precision: str,
                      out: Path) -> tuple[Fetched, Fetched]:
    """Plans, checks the disk, prints, downloads: the U-Net's and the VAE's checkpoint directories."""
    from huggingface_hub import constants
    unet = plan_part("U-Net", unet_repo, revision, UNET_FOLDERS, precision)
    vae = plan_part("VAE", vae_repo, vae_revision, VAE_FOLDERS, precision)
    to_download = missing_bytes(unet) + missing_bytes(vae)
    print_plan([unet, vae], to_download)
    unet_bytes = unet.sizes.get(unet.files[1]) or 0
    output = int(OUTPUT_FACTOR[precision] * (unet_bytes + (vae.sizes.get(vae.files[1]) or 0)))
    check_disk([("the download", Path(constants.HF_HUB_CACHE), to_download),
                ("the model directory", out, output),
                ("the exporter's scratch copy", Path(tempfile.gettempdir()), int(OUTPUT_FACTOR[precision] * unet_bytes))])
    fetched = []
    for part in (unet, vae):
        directory = download_part(part)
        fetched.append(Fetched(directory, directory / part.weights, provenance(part, directory)))
    return fetched[0], fetched[1]
