"""python -m dlopt: the dlopt command."""

import sys

from .cli import main

sys.exit(main())
