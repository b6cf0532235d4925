"""The Triton model repository writer (`python -m m3ddm_export triton-repo`, `--triton-repo`).

Every config.pbtxt is read back (tests/pbtxt.py) and compared with the model's manifest by
the rules of models/README.md; the real Triton loads a repository in test_serving.py.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from m3ddm_export import export as export_module
from m3ddm_export.cli import main

from conftest import MODELS_DIR, run_exporter
from pbtxt import Ident, parse

TINY = MODELS_DIR / "tiny"
GRAPHS = ("unet", "global_encoder", "vae_encoder", "vae_decoder")
TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64"}


def expected_tensors(tensors: list[dict], batched: bool) -> list[dict]:
    """The config's input or output entries a manifest implies (models/README.md, Triton repository)."""
    entries = []
    for tensor in tensors:
        shape = tensor["shape"]
        if batched:
            assert shape[0] == "batch"
            shape = shape[1:]
        entry = {"name": tensor["name"], "data_type": TRITON_TYPES[tensor["dtype"]],
                 "dims": [-1 if isinstance(dim, str) else dim for dim in shape]}
        if batched and not shape:  # [B] is served as [B, 1]
            entry["dims"], entry["reshape"] = [1], {"shape": []}
        entries.append(entry)
    return entries


def write_repo(tmp_path, *options, model=TINY):
    repo = tmp_path / "repo"
    result = run_exporter("triton-repo", "--model", str(model), "--out", str(repo), *options)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote Triton repository {repo}: unet, global_encoder, vae_encoder, vae_decoder")
    return repo


def read_config(repo, name) -> dict:
    return parse((repo / name / "config.pbtxt").read_text())


def test_repository_matches_manifest(tmp_path):
    repo = write_repo(tmp_path)
    manifest = json.loads((TINY / "manifest.json").read_text())
    assert sorted(p.name for p in repo.iterdir()) == sorted(GRAPHS)
    for name in GRAPHS:
        config, entry = read_config(repo, name), manifest["graphs"][name]
        batched = name != "global_encoder"
        assert config["name"] == name and config["backend"] == "onnxruntime"
        assert config["max_batch_size"] == (8 if batched else 0)
        assert config["input"] == expected_tensors(entry["inputs"], batched)
        assert config["output"] == expected_tensors(entry["outputs"], batched)
        assert all(isinstance(t["data_type"], Ident) for t in config["input"] + config["output"])
        assert ("dynamic_batching" in config) == batched
        assert config["instance_group"] == [{"count": 1, "kind": "KIND_GPU"}]
        assert "optimization" not in config
        graph = repo / name / "1" / "model.onnx"
        assert graph.read_bytes() == (TINY / entry["file"]).read_bytes()
        assert sorted(p.name for p in (repo / name / "1").iterdir()) == ["model.onnx"]


def test_gpus_tensorrt_and_batching_options(tmp_path):
    repo = write_repo(tmp_path, "--gpus", "0,1", "--tensorrt", "/trt-cache", "--max-batch", "4",
                      "--queue-delay-us", "500")
    unet = read_config(repo, "unet")
    assert unet["max_batch_size"] == 4
    assert unet["dynamic_batching"] == {"max_queue_delay_microseconds": 500}
    assert unet["instance_group"] == [{"count": 1, "kind": "KIND_GPU", "gpus": [0, 1]}]
    # Profiles at the tiny model's canvas 128: 16x16 latents, 16 * 6 * 6 = 576 context tokens.
    profiles = {"unet": ("sample:1x9x16x16x16,timestep:1,fps:1,context:1x576x320",
                         "sample:4x9x16x16x16,timestep:4,fps:4,context:4x576x320"),
                "global_encoder": ("global_latents:16x4x16x16",) * 2,
                "vae_encoder": ("images:1x3x128x128", "images:4x3x128x128"),
                "vae_decoder": ("latents:1x4x16x16", "latents:4x4x16x16")}
    for name, (smallest, largest) in profiles.items():
        [accelerator] = read_config(repo, name)["optimization"]["execution_accelerators"]["gpu_execution_accelerator"]
        assert accelerator["name"] == "tensorrt"
        parameters = {p["key"]: p["value"] for p in accelerator["parameters"]}
        assert parameters == {"precision_mode": "FP16", "trt_engine_cache_enable": "1",
                              "trt_engine_cache_path": f"/trt-cache/{name}",
                              "trt_profile_min_shapes": smallest, "trt_profile_opt_shapes": largest,
                              "trt_profile_max_shapes": largest}


def test_cpu_instances(tmp_path):
    repo = write_repo(tmp_path, "--cpu")
    for name in GRAPHS:
        assert read_config(repo, name)["instance_group"] == [{"count": 1, "kind": "KIND_CPU"}]


def model_copy(tmp_path):
    target = tmp_path / "model"
    shutil.copytree(TINY, target)
    return target


def rewrite_manifest(model, change):
    path = model / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_fp16_model_is_served_as_fp16(tmp_path):
    model = model_copy(tmp_path)

    def to_fp16(manifest):
        for entry in manifest["graphs"].values():
            for tensor in entry["inputs"] + entry["outputs"]:
                tensor["dtype"] = tensor["dtype"].replace("float32", "float16")
    rewrite_manifest(model, to_fp16)
    config = read_config(write_repo(tmp_path, model=model), "unet")
    assert [t["data_type"] for t in config["input"]] == ["TYPE_FP16", "TYPE_INT64", "TYPE_INT64", "TYPE_FP16"]
    assert [t["data_type"] for t in config["output"]] == ["TYPE_FP16"]


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_external_data_travels_with_the_graph(tmp_path):
    model = model_copy(tmp_path)
    graph = model / "vae_decoder.onnx"
    onnx.save_model(onnx.load(str(graph)), str(graph), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="vae_decoder.onnx.data", size_threshold=1024)  # shape constants stay inline

    def add_external_data(manifest):
        entry = manifest["graphs"]["vae_decoder"]
        entry["sha256"] = sha256(graph)
        entry["external_data"] = {"file": "vae_decoder.onnx.data", "sha256": sha256(model / "vae_decoder.onnx.data")}
    rewrite_manifest(model, add_external_data)
    repo = write_repo(tmp_path, model=model)
    version = repo / "vae_decoder" / "1"
    assert sorted(p.name for p in version.iterdir()) == ["model.onnx", "vae_decoder.onnx.data"]
    shutil.rmtree(model)  # the repository must not need the model directory
    latents = np.random.default_rng(0).standard_normal((2, 4, 16, 16)).astype(np.float32)
    served = ort.InferenceSession(str(version / "model.onnx"), providers=["CPUExecutionProvider"])
    original = ort.InferenceSession(str(TINY / "vae_decoder.onnx"), providers=["CPUExecutionProvider"])
    assert np.array_equal(served.run(None, {"latents": latents})[0], original.run(None, {"latents": latents})[0])


def test_force_replaces_only_the_four_models(tmp_path):
    repo = write_repo(tmp_path)
    (repo / "other" / "1").mkdir(parents=True)
    (repo / "unet" / "stale.txt").write_text("left from before")
    again = run_exporter("triton-repo", "--model", str(TINY), "--out", str(repo))
    assert again.returncode == 1 and "already exists; pass --force" in again.stderr
    assert write_repo(tmp_path, "--force", "--cpu") == repo
    assert (repo / "other" / "1").is_dir() and not (repo / "unet" / "stale.txt").exists()
    assert read_config(repo, "unet")["instance_group"][0]["kind"] == "KIND_CPU"


@pytest.mark.parametrize("problem,expected", [
    ("no directory", "does not exist"),
    ("no manifest", "has no manifest.json"),
    ("bfloat16", "has the dtype bfloat16"),
    ("no inputs", "lacks its file, inputs or outputs"),
    ("corrupt graph", "does not match the sha256 in manifest.json"),
])
def test_refusals(tmp_path, problem, expected):
    model = model_copy(tmp_path)
    if problem == "no directory":
        shutil.rmtree(model)
    elif problem == "no manifest":
        (model / "manifest.json").unlink()
    elif problem == "bfloat16":
        rewrite_manifest(model, lambda m: m["graphs"]["unet"]["inputs"][0].update(dtype="bfloat16"))
    elif problem == "no inputs":
        rewrite_manifest(model, lambda m: m["graphs"]["vae_decoder"].pop("inputs"))
    else:
        with (model / "unet.onnx").open("ab") as f:
            f.write(b"\0")
    result = run_exporter("triton-repo", "--model", str(model), "--out", str(tmp_path / "repo"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "repo").exists()


def test_usage_errors(tmp_path):
    for options in (["--cpu", "--tensorrt", "/cache"], ["--gpus", "0,x"], ["--max-batch", "0"]):
        result = run_exporter("triton-repo", "--model", str(TINY), "--out", str(tmp_path / "repo"), *options)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr


def test_export_writes_the_repository_too(tmp_path, monkeypatch, capsys):
    def fake_export(unet, conf, vae, vae_config, out, **_):  # the export itself is tested elsewhere
        shutil.copytree(TINY, out)
    monkeypatch.setattr(export_module, "export_model", fake_export)
    out, repo = tmp_path / "model", tmp_path / "repo"
    assert main(["--random-tiny", "0", "--out", str(out), "--triton-repo", str(repo), "--max-batch", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"wrote Triton repository {repo}")
    assert [read_config(repo, name)["max_batch_size"] for name in GRAPHS] == [2, 0, 2, 2]
