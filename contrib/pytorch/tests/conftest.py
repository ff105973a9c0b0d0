"""Shared fixtures: the ``rnet-util`` binary (reference numbers from the Rust code), random models
written as safetensors exports, and running the reference command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
PKG = HERE.parent
REPO = PKG.parent.parent
sys.path.insert(0, str(PKG))

from rnet_trainer.model import V5Config  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def _build_rnet_util() -> Path:
    """``RNET_UTIL`` if set, else the binary cargo builds (with the caller's CARGO_TARGET_DIR)."""
    given = os.environ.get("RNET_UTIL")
    if given:
        return Path(given)
    out = subprocess.run(
        ["cargo", "build", "-p", "rnet-util", "--bin", "rnet-util", "--message-format=json"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            if msg["target"]["name"] == "rnet-util":
                return Path(msg["executable"])
    raise RuntimeError("cargo did not report the rnet-util executable")


@pytest.fixture(scope="session")
def rnet_util() -> Path:
    return _build_rnet_util()


def random_tensors(cfg: V5Config, seed: int) -> dict[str, torch.Tensor]:
    """Random weights far from the uniform predictor (the scales of rnet_model's test models)."""
    rng = np.random.default_rng(seed)
    d = cfg.d_model
    out = {}
    for name, shape in cfg.shapes().items():
        z = rng.standard_normal(shape)
        kind = name.rsplit(".", 1)[-1]
        fan_in = shape[-1]
        if kind == "embed":
            v = z
        elif kind == "head":
            v = z * 3.0 / np.sqrt(d)
        elif kind in ("norm1", "norm2", "norm3", "norm_f"):
            v = 1.0 + 0.3 * z
        elif kind == "keys":
            v = 1.5 * z
        elif kind == "values":
            v = z
        elif kind in ("wo", "wm", "w_down"):
            v = z / np.sqrt(fan_in)
        elif ".conv." in name:
            v = 0.5 * z
        else:
            v = 1.5 * z / np.sqrt(fan_in)
        out[name] = torch.from_numpy(v.astype(np.float32))
    return out


def write_model(path: Path, cfg: V5Config, tensors: dict[str, torch.Tensor], height: int = 0):
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=cfg.metadata(height))


def random_bytes(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed + 1000).integers(0, 256, n, dtype=np.uint8).tobytes()


def reference(rnet_util: Path, model: Path, data: Path, out: Path, *flags: str) -> dict:
    """Runs ``rnet-util dev-reference`` and returns its JSON (files are under ``out``)."""
    res = subprocess.run(
        [str(rnet_util), "dev-reference", "--model", str(model), "--data", str(data),
         "--out", str(out), *flags],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def read_f32(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype="<f4")
