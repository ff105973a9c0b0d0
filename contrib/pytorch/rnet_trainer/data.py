"""Training data exactly as `rnet-training`'s ``DataSource``: the held-out tail, and the batch of
update ``step`` drawn from xoshiro256** seeded through SplitMix64 by ``(seed, step)``
(``rnet_training::rng``). Same seed, same step, same windows as the Rust engine, so a run here
sees the byte stream ``rnet-util train`` would, and data-parallel ranks agree on the global batch
without talking.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

_M = (1 << 64) - 1


def _splitmix(state: int) -> tuple[int, int]:
    state = (state + 0x9E3779B97F4A7C15) & _M
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M
    return state, z ^ (z >> 31)


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & _M


class Rng:
    """xoshiro256** (``rnet_training::rng::Rng``)."""

    def __init__(self, seed: int):
        st = seed & _M
        s = []
        for _ in range(4):
            st, v = _splitmix(st)
            s.append(v)
        self.s = s

    @classmethod
    def for_stream(cls, seed: int, stream: int) -> "Rng":
        """Stream ``stream`` of ``seed`` (one per training step)."""
        st = (seed ^ ((stream * 0xD1B54A32D192ED03) & _M)) & _M
        _, v = _splitmix(st)
        return cls(v)

    def next_u64(self) -> int:
        """Next 64 random bits."""
        s = self.s
        result = (_rotl((s[1] * 5) & _M, 7) * 9) & _M
        t = (s[1] << 17) & _M
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    def below(self, n: int) -> int:
        """Uniform in ``0..n`` (``(x · n) >> 64``)."""
        return (self.next_u64() * n) >> 64


class DataSource:
    """Bytes with a held-out tail and the seeded window sampler."""

    def __init__(self, data: np.ndarray, window: int, holdout_fraction: float = 0.01, seed: int = 0):
        if window <= 0:
            raise ValueError("window length must be positive")
        if not 0.0 <= holdout_fraction < 1.0:
            raise ValueError(f"held-out fraction {holdout_fraction} must be in [0, 1)")
        span = window + 1
        n = len(data)
        holdout = max(math.ceil(n * holdout_fraction), span) if holdout_fraction > 0 else 0
        if n < span + holdout:
            raise ValueError(f"training data has {n} bytes; at least {span + holdout} are needed")
        self.data = data
        self.window = window
        self.seed = seed
        self.train_len = n - holdout

    @classmethod
    def open(cls, path: str | Path, window: int, holdout_fraction: float = 0.01, seed: int = 0):
        """Memory-maps ``path`` (which must not change while training)."""
        size = Path(path).stat().st_size
        data = np.memmap(path, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
        return cls(data, window, holdout_fraction, seed)

    def starts(self, step: int, windows: int) -> list[int]:
        """Offsets of the ``windows`` windows of update ``step`` (0-based global step)."""
        rng = Rng.for_stream(self.seed, step)
        n = self.train_len - (self.window + 1) + 1
        return [rng.below(n) for _ in range(windows)]

    def batch(self, step: int, windows: int) -> tuple[np.ndarray, np.ndarray]:
        """``(inputs, targets)``, each ``[windows, T]`` uint8: the batch of update ``step``."""
        t = self.window
        rows = np.stack([np.asarray(self.data[s : s + t + 1]) for s in self.starts(step, windows)])
        return rows[:, :t], rows[:, 1:]
