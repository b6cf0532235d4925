"""Where named models live (`--from-hub NAME` writes there; the element and m3ddm-reframe read there).

$M3DDM_MODELS_DIR/NAME, else $XDG_DATA_HOME/m3ddmoutpaint/models/NAME, else
~/.local/share/m3ddmoutpaint/models/NAME: the same rule as the engine's
`model_dirs::named_model_dir` (src/engine/model_dirs.rs).
"""

from __future__ import annotations

import os
from pathlib import Path


def models_root() -> Path:
    override = os.environ.get("M3DDM_MODELS_DIR")
    if override:
        return Path(override)
    data_home = os.environ.get("XDG_DATA_HOME")
    base = Path(data_home) if data_home and os.path.isabs(data_home) else Path.home() / ".local" / "share"
    return base / "m3ddmoutpaint" / "models"


def named_model_dir(name: str) -> Path:
    return models_root() / name
