# SPDX-License-Identifier: MPL-2.0
"""`python -m m3ddm_eval DATA ...` (see cli.py)."""

import sys

from .cli import main

sys.exit(main())
