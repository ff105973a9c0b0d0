"""The optimizer of `rnet-training` (docs/training.md "Optimizer"): AdamW with decoupled weight
decay on every rank-2 tensor (not on the RMSNorm gains), bias correction, global-norm clipping,
linear warmup then cosine decay to ``lr · min_lr_ratio`` at ``total_steps``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class TrainConfig:
    """Hyper-parameters; defaults are `rnet-util train`'s (``TrainConfig::default()`` with lr 3e-3,
    16 windows, warmup ``min(20, steps)`` and the cosine ending at the run's last step)."""

    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup: int = 20
    total_steps: int = 10_000
    batch_windows: int = 16
    weight_decay: float = 0.1
    clip: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate of update ``step`` (1-based), computed in f64 and rounded to f32 as
    ``rnet_training::lr_at``."""
    lr = float(np.float32(cfg.lr))
    low = lr * float(np.float32(cfg.min_lr_ratio))
    t = max(step, 1)
    if cfg.warmup > 0 and t <= cfg.warmup:
        v = lr * t / cfg.warmup
    elif t >= cfg.total_steps:
        v = low
    else:
        progress = (t - cfg.warmup) / (cfg.total_steps - cfg.warmup)
        v = low + 0.5 * (lr - low) * (1.0 + math.cos(math.pi * progress))
    return float(np.float32(v))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over ``model``'s parameters: weight decay for tensors of rank ≥ 2 only."""
    decay, plain = [], []
    for p in model.parameters():
        (decay if p.ndim >= 2 else plain).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": plain, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, foreach=True
    )


def clip_scale(norm: float, clip: float) -> float:
    """The factor that brings a gradient of norm ``norm`` to at most ``clip`` (1 when ``clip ≤ 0``
    or not needed): ``clip / norm``, without the ``1e-6`` PyTorch's ``clip_grad_norm_`` adds."""
    return clip / norm if clip > 0 and norm > clip else 1.0
