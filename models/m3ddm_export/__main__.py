"""`python -m m3ddm_export`: see cli.py."""

import sys

from .cli import main

sys.exit(main())
