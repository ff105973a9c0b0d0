"""Reading ``{input}`` and writing ``{output}`` in the miner's safetensors interchange
(docs/training.md "External trainers", ``rnet_model::interchange``): one F32 tensor per schema
name, ``__metadata__`` with the shape. The miner refuses an output with a missing or extra tensor,
another dtype or shape, or any NaN, infinite or subnormal value, so :func:`save_model` checks the
first three and flushes subnormals to zero (what ``Checkpoint::new`` does to in-process weights).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .model import V5Config

# Smallest positive normal f32.
F32_MIN_NORMAL = 2.0**-126


def load_model(path: str | Path) -> tuple[V5Config, dict[str, torch.Tensor], dict[str, str]]:
    """``(config, tensors, metadata)`` of a model export; ``ValueError`` when the file does not
    hold exactly the tensors its metadata describes (names, F32, shapes)."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        cfg = V5Config.from_metadata(meta)
        want = cfg.shapes()
        names = set(f.keys())
        if names != set(want):
            missing = sorted(set(want) - names)
            extra = sorted(names - set(want))
            raise ValueError(f"tensors do not match the config: missing {missing}, extra {extra}")
        tensors = {}
        for name, shape in want.items():
            t = f.get_tensor(name)
            if t.dtype != torch.float32 or tuple(t.shape) != shape:
                raise ValueError(f"tensor {name!r} is {t.dtype} {tuple(t.shape)}, want F32 {shape}")
            tensors[name] = t
    return cfg, tensors, meta


def clean_for_export(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """F32, contiguous, on the CPU, subnormals flushed to zero; ``ValueError`` naming the tensor
    when a value is NaN or infinite (such weights are refused by the miner and are no model)."""
    out = {}
    for name, t in tensors.items():
        t = t.detach().to("cpu", torch.float32).contiguous()
        bad = ~torch.isfinite(t)
        if bad.any():
            index = int(bad.reshape(-1).nonzero()[0])
            raise ValueError(f"tensor {name!r} element {index} is not finite")
        out[name] = torch.where(t.abs() < F32_MIN_NORMAL, torch.zeros_like(t), t)
    return out


def save_model(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]):
    """Writes ``tensors`` (cleaned, see :func:`clean_for_export`) with ``metadata`` to ``path``
    through a temporary file and a rename, so the miner never reads a half-written file."""
    clean = clean_for_export(tensors)
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    save_file(clean, str(tmp), metadata=metadata)
    os.replace(tmp, path)
