"""``python -m rnet_trainer``: see :mod:`rnet_trainer.cli`."""

import sys

from .cli import main

sys.exit(main())
