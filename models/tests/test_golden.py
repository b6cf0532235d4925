"""The golden `unet` and `vae` cases through graphs exported from tiny-model-a, run in ONNX Runtime."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import load_file

TOLERANCE = 1e-3  # the cases' max abs error (shared/golden/README.md)


def session(directory, name):
    return ort.InferenceSession(str(directory / f"{name}.onnx"), providers=["CPUExecutionProvider"])


def case(golden, name):
    directory = golden / name
    return json.loads((directory / "case.json").read_text()), load_file(str(directory / "tensors.safetensors"))


def max_error(got, expected):
    assert got.shape == expected.shape
    return float(np.max(np.abs(got.astype(np.float64) - expected)))


def as_feature_maps(context, grid):
    """Context tokens [1, 16*h'*w', 320] back to the encoder's maps [16, 320, h', w']."""
    return context.reshape(16, grid[0], grid[1], -1).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("name", ["unet-tiny-a"])
def test_unet_case(golden, golden_model_export, name):
    meta, tensors = case(golden, name)
    assert meta["kind"] == "unet" and meta["do_classifier"] == 4
    assert (golden / name / meta["model"]).resolve() == (golden / "tiny-model-a").resolve()
    encoder = session(golden_model_export, "global_encoder")
    global_latents = tensors["global_latents"]
    context_uncond = encoder.run(None, {"global_latents": np.zeros_like(global_latents)})[0]
    context_cond = encoder.run(None, {"global_latents": global_latents})[0]
    grid = tensors["context_cond"].shape[2:]
    assert max_error(as_feature_maps(context_uncond, grid), tensors["context_uncond"]) <= TOLERANCE
    assert max_error(as_feature_maps(context_cond, grid), tensors["context_cond"]) <= TOLERANCE

    # The official 4-way batch: contexts [enc(0), enc(0), enc(global), enc(global)].
    sample = tensors["sample"]
    batch = sample.shape[0]
    context = np.concatenate([context_uncond, context_uncond, context_cond, context_cond])
    output = session(golden_model_export, "unet").run(None, {
        "sample": sample,
        "timestep": np.full(batch, meta["timestep"], np.int64),
        "fps": np.full(batch, meta["fps"], np.int64),
        "context": context,
    })[0]
    assert max_error(output, tensors["output"]) <= TOLERANCE


def test_unet_items_are_independent(golden, golden_model_export):
    """The engine sends only the batch items it needs: item 1 alone equals item 1 of the 4-way batch."""
    meta, tensors = case(golden, "unet-tiny-a")
    encoder = session(golden_model_export, "global_encoder")
    context_uncond = encoder.run(None, {"global_latents": np.zeros_like(tensors["global_latents"])})[0]
    output = session(golden_model_export, "unet").run(None, {
        "sample": tensors["sample"][1:2],
        "timestep": np.full(1, meta["timestep"], np.int64),
        "fps": np.full(1, meta["fps"], np.int64),
        "context": context_uncond,
    })[0]
    assert max_error(output, tensors["output"][1:2]) <= TOLERANCE


def test_vae_case(golden, golden_model_export):
    meta, tensors = case(golden, "vae-tiny-a")
    assert meta["kind"] == "vae"
    latent_mean = session(golden_model_export, "vae_encoder").run(None, {"images": tensors["images"]})[0]
    assert max_error(latent_mean, tensors["latent_mean"]) <= TOLERANCE
    decoded = session(golden_model_export, "vae_decoder").run(None, {"latents": tensors["latents"]})[0]
    assert max_error(decoded, tensors["decoded"]) <= TOLERANCE


def test_golden_export_manifest(golden, golden_model_export):
    manifest = json.loads((golden_model_export / "manifest.json").read_text())
    assert manifest["canvas"] == 128 and manifest["precision"] == "fp32"
    config = json.loads((golden / "tiny-model-a" / "unet" / "config.json").read_text())
    assert manifest["unet_config"] == config
    assert manifest["source"]["unet"]["path"] == str((golden / "tiny-model-a" / "unet").resolve())
    assert manifest["source"]["random_tiny_seed"] is None
