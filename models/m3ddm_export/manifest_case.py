"""`check-manifest CASE_JSON`: the full U-Net built on `meta` against a conformance `manifest` case."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .config import UNetConfig
from .errors import ExportError
from .unet3d import UNet3D

DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.int64: "int64"}


def read_case(path: Path) -> dict:
    if path.is_dir():
        path = path / "case.json"
    if not path.is_file():
        raise ExportError(f"The manifest case {path} does not exist.")
    try:
        case = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ExportError(f"The manifest case {path} cannot be read as JSON ({err}).") from None
    if not isinstance(case, dict) or case.get("kind") != "manifest":
        raise ExportError(f"The case {path} is not of kind 'manifest'.")
    for key in ("config", "state", "num_parameters", "num_state_entries"):
        if key not in case:
            raise ExportError(f"The manifest case {path} has no '{key}'.")
    return case


def first_mismatch(case: dict, module: torch.nn.Module) -> str | None:
    """The first difference between the module's state-dict layout and the case, or None."""
    state = module.state_dict()
    names = list(state)
    for index, entry in enumerate(case["state"]):
        name = entry.get("name")
        if index >= len(names):
            return f"the case has {name} where the module has no more entries"
        if names[index] != name:
            where = "missing from the module" if name not in state else f"at position {names.index(name)}"
            return f"entry {index} is {names[index]} in the module but {name} in the case ({name} is {where})"
        tensor = state[name]
        if list(tensor.shape) != list(entry.get("shape", [])):
            return f"{name} has shape {list(tensor.shape)} in the module but {entry.get('shape')} in the case"
        dtype = DTYPE_NAMES.get(tensor.dtype, str(tensor.dtype))
        if "dtype" in entry and dtype != entry["dtype"]:
            return f"{name} is {dtype} in the module but {entry['dtype']} in the case"
    if len(names) > len(case["state"]):
        return f"the module has {names[len(case['state'])]} after the case's last entry"
    if len(names) != case["num_state_entries"]:
        return f"the module has {len(names)} state entries but the case says {case['num_state_entries']}"
    parameters = sum(p.numel() for p in module.parameters())
    if parameters != case["num_parameters"]:
        return f"the module has {parameters} parameters but the case says {case['num_parameters']}"
    return None


def check_manifest_case(path: Path) -> tuple[bool, str]:
    """Returns (match, the one line to print)."""
    case = read_case(path)
    conf = UNetConfig.from_dict(case["config"])
    with torch.device("meta"):
        module = UNet3D(conf)
    mismatch = first_mismatch(case, module)
    if mismatch:
        return False, f"manifest mismatch: {mismatch}"
    parameters = sum(p.numel() for p in module.parameters())
    return True, f"manifest ok: {len(module.state_dict())} entries, {parameters} parameters"
