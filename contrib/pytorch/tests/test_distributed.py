"""Data parallelism on the CPU (Gloo): ``torchrun --nproc_per_node=2`` with DDP, and with FSDP,
follows the loss curve of a one-rank run with the same global batch and ends at the same weights
(within float rounding), each rank training on its half of every batch."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from conftest import PKG, random_tensors, write_model
from safetensors.torch import load_file

from rnet_trainer.model import V5Config

STEPS = 5
ARGS = ["--steps", str(STEPS), "--batch", "4", "--seed", "3", "--lr", "3e-3", "--log-every", "1"]


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(PKG) + os.pathsep + e.get("PYTHONPATH", "")
    e["OMP_NUM_THREADS"] = "1"
    # Rendezvous and Gloo stay on the loopback interface.
    e.setdefault("GLOO_SOCKET_IFNAME", "lo")
    return e


def launch(ranks: int, files: dict, out, log, *extra: str) -> dict:
    common = ["--input", str(files["model"]), "--output", str(out), "--data", str(files["data"]),
              "--log-json", str(log), *ARGS, *extra]
    if ranks == 1:
        cmd = [sys.executable, "-m", "rnet_trainer", *common]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={ranks}", "-m", "rnet_trainer", *common]
    res = subprocess.run(cmd, cwd=PKG, env=env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(log.read_text())


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist")
    cfg = V5Config(d_model=32, n_layers=2, n_slots=16, d_ff=64, kernel_sizes=(3, 7, 15), window=64)
    model = d / "model.safetensors"
    write_model(model, cfg, random_tensors(cfg, seed=9))
    data = d / "data.bin"
    data.write_bytes(b"".join(b"And God said, Let there be light %d. " % i for i in range(400)))
    one = launch(1, {"model": model, "data": data}, d / "one.safetensors", d / "one.json")
    return {"model": model, "data": data, "dir": d, "one": one}


def assert_same_run(one: dict, two: dict, w_one: dict, w_two: dict):
    assert [s["step"] for s in two["steps"]] == list(range(1, STEPS + 1))
    for a, b in zip(one["steps"], two["steps"], strict=True):
        assert a["lr"] == b["lr"]
        assert math.isclose(a["loss"], b["loss"], rel_tol=1e-5), (a, b)
        assert math.isclose(a["grad_norm"], b["grad_norm"], rel_tol=1e-4), (a, b)
    # The curve actually moves, so the comparison is not trivial.
    assert one["steps"][-1]["loss"] < one["steps"][0]["loss"] - 0.05
    assert set(w_one) == set(w_two)
    for name in w_one:
        diff = float((w_one[name] - w_two[name]).abs().max())
        assert diff <= 1e-5, f"{name}: {diff:.2e}"


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_ranks_follow_the_one_rank_curve(files, mode):
    d = files["dir"]
    out, log = d / f"{mode}.safetensors", d / f"{mode}.json"
    extra = ["--fsdp"] if mode == "fsdp" else []
    two = launch(2, files, out, log, *extra)
    assert two["world"] == 2 and two["per_rank_windows"] == 2
    assert files["one"]["world"] == 1 and files["one"]["per_rank_windows"] == 4
    if mode == "fsdp":
        assert two["local_params"] <= 0.55 * two["params"], "FSDP shards the weights"
    else:
        assert two["local_params"] == two["params"], "DDP replicates the weights"
    assert_same_run(
        files["one"], two, load_file(str(d / "one.safetensors")), load_file(str(out))
    )
