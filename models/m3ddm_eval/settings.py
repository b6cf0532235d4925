# SPDX-License-Identifier: MPL-2.0
"""A row of the evaluation: the element's properties for one setting.

`--setting "steps=20 scheduler=dpmsolver++"` gives element properties as
gst-launch writes them, plus three keys of the tool: `model=DIR` (the
element's model-path; `--model` gives the default), `passes=1|2` (1: the
element alone, chunk by chunk over its lookahead; 2: the keyframe pass with
`write-plan`, then the output pass with `plan-file`, as m3ddm-reframe runs a
file) and `name=` (the row's label). The blur and color fills are always
rows, as baselines."""

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

TOOL_KEYS = {"model", "passes", "name"}
# Set by the tool for every run: a setting cannot change them.
RESERVED = {"aspect", "expand", "write-plan", "plan-file", "plan-frames", "plan-cuts"}


@dataclass
class Setting:
    name: str
    properties: dict = field(default_factory=dict)
    passes: int = 1

    def launch_properties(self) -> str:
        return " ".join(f"{key}={shlex.quote(str(value))}" for key, value in self.properties.items())


BASELINES = [
    Setting("blur", {"fill-mode": "blur"}),
    Setting("color", {"fill-mode": "color"}),
]


def random_weights(model: Path) -> bool:
    """Whether the model directory holds the exporter's random-weight test model."""
    try:
        manifest = json.loads((model / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return (manifest.get("source") or {}).get("random_tiny_seed") is not None


def parse_setting(text: str, default_model) -> Setting:
    """The setting of one `--setting` text (a sentence on what is wrong)."""
    properties = {"fill-mode": "outpaint"}
    name, passes, model = None, 1, default_model
    for token in shlex.split(text):
        key, sep, value = token.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"--setting {text!r}: `{token}` is not key=value")
        if key in RESERVED:
            raise ValueError(f"--setting {text!r}: {key} is set by the evaluation (the mask)")
        if key == "name":
            name = value
        elif key == "passes":
            if value not in ("1", "2"):
                raise ValueError(f"--setting {text!r}: passes is 1 (chunked) or 2 (keyframe pass, then output pass)")
            passes = int(value)
        elif key == "model":
            model = value
        else:
            properties[key] = value
    if properties["fill-mode"] == "outpaint":
        if model is None:
            raise ValueError(f"--setting {text!r} outpaints and names no model: add model=DIR or --model DIR")
        if not (Path(model) / "manifest.json").is_file():
            raise ValueError(f"--setting {text!r}: {model} is not an exported model (no manifest.json)")
        properties["model-path"] = str(Path(model).resolve())
    if name is None:
        name = " ".join(shlex.split(text)) or "outpaint"
        if passes == 2 and "passes=2" not in name:
            name += " passes=2"
        if model is not None and properties["fill-mode"] == "outpaint":
            name += f" ({Path(model).name}{', random weights' if random_weights(Path(model)) else ''})"
    return Setting(name, properties, passes)
