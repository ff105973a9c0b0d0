"""Script entry point: ``python contrib/pytorch/train.py --input … --output … --data … --steps …``
(or ``torchrun --nproc_per_node=N contrib/pytorch/train.py …``), the same as
``python -m rnet_trainer`` without having to set PYTHONPATH."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rnet_trainer.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
