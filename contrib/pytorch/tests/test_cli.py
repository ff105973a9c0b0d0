"""The command line as ``rnet-miner -trainer-cmd`` runs it: a checkpoint exported by
``rnet-util`` goes in, the weights that come out pass ``rnet-util checkpoint import-safetensors``
(the miner's strict import) and have a lower canonical loss; bad input is a one-line error and a
non-zero exit; non-finite and subnormal values never reach the output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import PKG
from safetensors.torch import load_file, save_file

from rnet_trainer.io import clean_for_export

SCRIPT = PKG / "train.py"


def util(rnet_util, *args: str) -> str:
    res = subprocess.run([str(rnet_util), *args], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout


def trainer(*args: str, script: bool = False) -> subprocess.CompletedProcess:
    e = dict(os.environ, PYTHONPATH=str(PKG))
    cmd = [sys.executable, str(SCRIPT)] if script else [sys.executable, "-m", "rnet_trainer"]
    return subprocess.run([*cmd, *args], env=e, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def genesis(tmp_path_factory, rnet_util):
    d = tmp_path_factory.mktemp("cli")
    ck = d / "genesis.rnck"
    util(rnet_util, "checkpoint", "init", "--network", "regtest", "--seed", "1", "--out", str(ck))
    st = d / "genesis.safetensors"
    util(rnet_util, "checkpoint", "export-safetensors", str(ck), str(st))
    data = PKG.parent.parent / "data"
    corpus = sorted(p for p in data.iterdir() if p.is_file() and p.stat().st_size > 100_000)
    assert corpus, "the bundled corpus is in data/"
    return {"dir": d, "ck": ck, "st": st, "data": corpus[0]}


@pytest.mark.parametrize("script", [False, True], ids=["module", "script"])
def test_output_passes_the_miners_strict_import_and_learns(genesis, rnet_util, script):
    d = genesis["dir"]
    out = d / f"out-{script}.safetensors"
    res = trainer("--input", str(genesis["st"]), "--output", str(out), "--data",
                  str(genesis["data"]), "--steps", "30", "--batch", "8", "--log-every", "10",
                  script=script)
    assert res.returncode == 0, res.stderr
    assert "step 30/30 loss" in res.stdout
    back = d / f"back-{script}.rnck"
    info = json.loads(util(rnet_util, "checkpoint", "import-safetensors", str(out), "--like",
                           str(genesis["ck"]), "--out", str(back)))
    assert info["height"] == 0
    before = json.loads(util(rnet_util, "checkpoint", "eval", str(genesis["ck"])))
    after = json.loads(util(rnet_util, "checkpoint", "eval", str(back)))
    assert after["val_loss"] < before["val_loss"] - 200_000, (before, after)


def test_bad_input_is_a_one_line_error(genesis, tmp_path):
    st = load_file(str(genesis["st"]))
    del st["layers.1.gru.wo"]
    broken = tmp_path / "broken.safetensors"
    from safetensors import safe_open

    with safe_open(str(genesis["st"]), framework="pt") as f:
        meta = f.metadata()
    save_file(st, str(broken), metadata=meta)
    out = tmp_path / "out.safetensors"
    cases = [
        (["--input", str(broken)], "layers.1.gru.wo"),
        (["--input", str(tmp_path / "missing.safetensors")], "missing.safetensors"),
        (["--input", str(genesis["st"]), "--steps", "0"], "--steps"),
        (["--input", str(genesis["st"]), "--batch", "3", "--data", str(tmp_path / "none")], "none"),
    ]
    for args, word in cases:
        base = {"--output": str(out), "--data": str(genesis["data"]), "--steps": "2"}
        for i in range(0, len(args), 2):
            base[args[i]] = args[i + 1]
        flat = [x for kv in base.items() for x in kv]
        if "--input" not in base:
            flat += ["--input", str(genesis["st"])]
        res = trainer(*flat)
        assert res.returncode == 2, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert word in res.stderr, (word, res.stderr)
        assert not out.exists()


def test_export_flushes_subnormals_and_refuses_non_finite():
    t = torch.tensor([1.0, 1e-40, -1e-39, 2.0**-126, 0.0])
    clean = clean_for_export({"w": t})["w"]
    assert clean.tolist() == [1.0, 0.0, 0.0, 2.0**-126, 0.0]
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="'w' element 2"):
            clean_for_export({"w": torch.tensor([1.0, 2.0, bad])})
