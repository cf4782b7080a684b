"""``python -m h3r``: the ``h3r`` command (``train``, ``eval``), also under ``torchrun -m h3r``."""
import sys

from h3r.cli import main

sys.exit(main())
