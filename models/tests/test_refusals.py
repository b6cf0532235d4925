"""Bad input is refused with one sentence on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from m3ddm_export.checkpoint import load_unet
from m3ddm_export.cli import main

from conftest import run_exporter


def refusal(capsys, argv, progress_lines: int = 0) -> str:
    """Runs the command line in-process; returns its error line after checking the exit code.

    Refusals of bad input print exactly one line; a failure during the export comes after
    `progress_lines` lines of progress.
    """
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 + progress_lines, err
    assert "Traceback" not in err
    return lines[-1]


@pytest.fixture
def model_copy(golden, tmp_path):
    """A writable copy of tiny-model-a to break in different ways."""
    target = tmp_path / "ckpt"
    shutil.copytree(golden / "tiny-model-a", target)
    for path in target.rglob("*"):
        path.chmod(0o644 if path.is_file() else 0o755)
    return target


def args(model, out):
    return ["--unet", str(model / "unet"), "--vae", str(model / "vae"), "--out", str(out)]


def test_missing_unet_directory(capsys, model_copy, tmp_path):
    line = refusal(capsys, args(tmp_path / "nowhere", tmp_path / "out"))
    assert "U-Net directory" in line and "does not exist" in line


def test_missing_config(capsys, model_copy, tmp_path):
    (model_copy / "unet" / "config.json").unlink()
    assert "has no config.json" in refusal(capsys, args(model_copy, tmp_path / "out"))


def test_missing_weights(capsys, model_copy, tmp_path):
    (model_copy / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    line = refusal(capsys, args(model_copy, tmp_path / "out"))
    assert "VAE directory" in line and "diffusion_pytorch_model" in line


def test_corrupt_weights(capsys, model_copy, tmp_path):
    (model_copy / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    assert "cannot be read" in refusal(capsys, args(model_copy, tmp_path / "out"))


def test_checkpoint_with_other_layout(capsys, model_copy, tmp_path):
    weights = model_copy / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(weights))
    del state["mid_block.attentions.0.proj_in.weight"]
    state["conv_in.weight"] = torch.zeros(32, 8, 1, 3, 3, dtype=torch.float16)
    save_file(state, str(weights))
    line = refusal(capsys, args(model_copy, tmp_path / "out"))
    assert "do not match the layout" in line
    assert "conv_in.weight has shape [32, 8, 1, 3, 3] where [32, 9, 1, 3, 3] is expected" in line
    assert "mid_block.attentions.0.proj_in.weight is missing" in line


def test_config_of_another_architecture(capsys, model_copy, tmp_path):
    config_path = model_copy / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    config["block_out_channels"] = [32, 64, 64, 64]
    config_path.write_text(json.dumps(config))
    line = refusal(capsys, args(model_copy, tmp_path / "out"))
    assert "do not match the layout" in line and "down_blocks.1" in line


def test_vae_that_is_not_four_channel(capsys, model_copy, tmp_path):
    config_path = model_copy / "vae" / "config.json"
    config = json.loads(config_path.read_text())
    config["latent_channels"] = 16
    config_path.write_text(json.dumps(config))
    line = refusal(capsys, args(model_copy, tmp_path / "out"))
    assert "16 latent channels" in line and "4 latent channels" in line


def test_existing_output_directory(capsys, model_copy, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    line = refusal(capsys, args(model_copy, out))
    assert "already exists" in line and "--force" in line


@pytest.mark.parametrize("strides, says", [
    ("5,5,1", "not strictly decreasing"), ("5,3", "does not end in 1"), ("16,5,1", "outside 1 to 15"),
    ("5;3;1", "not whole numbers"), ("", "not whole numbers"),
])
def test_bad_stride_lists(capsys, model_copy, tmp_path, strides, says):
    line = refusal(capsys, [*args(model_copy, tmp_path / "out"), "--strides", strides])
    assert f"The stride list {strides!r}" in line and says in line
    assert not (tmp_path / "out").exists()


def test_usage_error_is_one_sentence(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--random-tiny", "0"])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0]


def test_refusal_as_a_process(tmp_path):
    """The real process: exit status 1, one stderr line, nothing on stdout."""
    result = run_exporter("--unet", str(tmp_path / "missing"), "--vae", str(tmp_path / "vae"),
                          "--out", str(tmp_path / "out"))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "does not exist" in result.stderr


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_bin_weights_in_either_precision_load_as_fp32(model_copy, dtype):
    """diffusion_pytorch_model.bin (torch.save) is read like .safetensors; weights compute in fp32."""
    unet_dir = model_copy / "unet"
    reference, _, _ = load_unet(unet_dir)
    state = load_file(str(unet_dir / "diffusion_pytorch_model.safetensors"))
    (unet_dir / "diffusion_pytorch_model.safetensors").unlink()
    torch.save({k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()},
               unet_dir / "diffusion_pytorch_model.bin")
    module, _, source = load_unet(unet_dir)
    assert source.path.endswith("unet") and len(source.sha256) == 64
    loaded, expected = module.state_dict(), reference.state_dict()
    for name, tensor in loaded.items():
        assert tensor.dtype == (torch.float32 if expected[name].is_floating_point() else torch.int64)
        assert torch.equal(tensor, expected[name])


def test_failed_export_leaves_no_model_directory(capsys, tmp_path, monkeypatch):
    """A failure after some graphs were written is reported, and nothing half-written stays."""
    from m3ddm_export import export
    from m3ddm_export.graphs import GRAPH_BY_KEY
    written = []

    def save_then_fail(traced, spec, out_dir, float_dtype):
        if written:
            raise export.ExportError(f"The exported {spec.key} graph differs from PyTorch by 1 at a second shape.")
        written.append(out_dir / spec.file)
        return real_save(traced, spec, out_dir, float_dtype)

    real_save = export.save_graph
    monkeypatch.setattr(export, "save_graph", save_then_fail)
    monkeypatch.setattr(export, "GRAPHS", (GRAPH_BY_KEY["vae_decoder"], GRAPH_BY_KEY["vae_encoder"]))
    out = tmp_path / "out"
    line = refusal(capsys, ["--random-tiny", "0", "--out", str(out), "--no-verify"], progress_lines=2)
    assert line == "m3ddm_export: The exported vae_encoder graph differs from PyTorch by 1 at a second shape."
    assert written == [out / "vae_decoder.onnx"]
    assert not out.exists()
