"""The PyTorch model against the Rust code on random models at several shapes:

* forward: logits and per-position losses against ``rnet_model``'s canonical evaluator, and the
  evaluator's total and mean, within 1e-4 relative;
* backward: the gradient of every tensor against ``rnet-training``'s exact backward pass within
  1e-4 (of the tensor's largest gradient entry), and the batch loss;
* a short training run (data sampler, schedule, clipping, AdamW) against ``rnet-training``'s
  ``Trainer::run`` with the same settings.

Reference numbers come from ``rnet-util dev-reference``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import random_bytes, random_tensors, read_f32, reference, write_model
from safetensors.torch import load_file

from rnet_trainer.model import V5Config, V5Model, evaluate
from rnet_trainer.optim import TrainConfig
from rnet_trainer.train import Job, run

SHAPES = [
    # d, L, S, kernels, T, data bytes
    (4, 1, 1, (1,), 5, 23),
    (6, 2, 3, (3, 7), 17, 3 * 17 + 9),
    (10, 3, 5, (2, 5, 9), 33, 4 * 33 + 1),
    (16, 2, 8, (3, 7, 15), 130, 3 * 130 + 40),  # several scan chunks, the last one partial
    (32, 2, 16, (3, 7, 15), 64, 5 * 64 + 11),  # regtest genesis shape
]


def config(shape) -> V5Config:
    d, n_layers, s, ks, t, _ = shape
    return V5Config(d_model=d, n_layers=n_layers, n_slots=s, d_ff=2 * d, kernel_sizes=ks, window=t)


def model_of(cfg: V5Config, tensors) -> V5Model:
    m = V5Model(cfg)
    m.load_state_dict(tensors)
    return m


@pytest.fixture(params=range(len(SHAPES)), ids=lambda i: "d{}_L{}_S{}_K{}_T{}".format(*SHAPES[i][:5]))
def case(request, tmp_path, rnet_util):
    i = request.param
    shape = SHAPES[i]
    cfg = config(shape)
    tensors = random_tensors(cfg, seed=i)
    model_file = tmp_path / "model.safetensors"
    write_model(model_file, cfg, tensors)
    data = random_bytes(shape[5], seed=i)
    data_file = tmp_path / "data.bin"
    data_file.write_bytes(data)
    out = tmp_path / "ref"
    ref = reference(rnet_util, model_file, data_file, out)
    return cfg, tensors, data, ref, out


def test_forward_matches_the_canonical_evaluator(case):
    cfg, tensors, data, ref, out = case
    got = evaluate(model_of(cfg, tensors), data)
    want_logits = read_f32(out / "eval_logits.f32").reshape(-1, 256)
    want_losses = read_f32(out / "eval_losses.f32")
    logits = got["logits"].numpy()
    losses = got["losses"].numpy()
    assert logits.shape == want_logits.shape
    assert losses.shape == want_losses.shape == (len(data) - 1,)
    err = np.abs(logits - want_logits) / np.maximum(np.abs(want_logits), 1.0)
    assert err.max() <= 1e-4, f"logits: worst relative error {err.max():.2e}"
    err = np.abs(losses - want_losses) / np.maximum(np.abs(want_losses), 1.0)
    assert err.max() <= 1e-4, f"losses: worst relative error {err.max():.2e}"
    ev = ref["eval"]
    assert got["bytes"] == ev["bytes"] and got["windows"] == ev["windows"]
    assert math.isclose(got["total_nats"], ev["total_nats"], rel_tol=1e-4)
    assert math.isclose(got["mean_nats"], ev["mean_nats"], rel_tol=1e-4)
    assert abs(got["mean_nats"] * 1e6 - ev["val_loss"]) <= 1e-4 * ev["val_loss"]
    # The random models are far from the uniform predictor, so agreement means something.
    assert abs(ev["mean_nats"] - math.log(256)) > 0.05


def test_gradients_match_the_training_engine(case):
    cfg, tensors, data, ref, out = case
    t = cfg.window
    n = (len(data) - 1) // t
    buf = np.frombuffer(data, dtype=np.uint8)
    x = torch.from_numpy(np.stack([buf[w * t : w * t + t] for w in range(n)]))
    y = torch.from_numpy(np.stack([buf[w * t + 1 : w * t + t + 1] for w in range(n)]))
    assert ref["grad"]["windows"] == n
    model = model_of(cfg, tensors)
    loss = model.loss(x, y)
    loss.backward()
    assert math.isclose(float(loss.detach()), ref["grad"]["loss"], rel_tol=1e-5)
    want = load_file(str(out / "grad.safetensors"))
    got = dict(model.named_parameters())
    assert set(got) == set(want) == set(cfg.shapes())
    for name, w in want.items():
        g = got[name].grad
        assert g is not None and g.shape == w.shape, name
        scale = float(w.abs().max())
        worst = float((g - w).abs().max())
        assert worst <= 1e-4 * scale + 1e-9, f"{name}: max diff {worst:.3e}, scale {scale:.3e}"
    assert any(float(w.abs().max()) > 0 for w in want.values())


def test_a_training_run_matches_the_engine(tmp_path, rnet_util):
    """Six AdamW updates at the regtest shape from the same start with the same seed: the same
    batches, learning rates, losses and (within float drift) weights as `Trainer::run`."""
    cfg = config(SHAPES[4])
    tensors = random_tensors(cfg, seed=42)
    model_file = tmp_path / "model.safetensors"
    write_model(model_file, cfg, tensors)
    data_file = tmp_path / "data.bin"
    # Text-like data (repetitive), several thousand bytes.
    data_file.write_bytes(b"".join(b"In the beginning %d was the word. " % i for i in range(300)))
    flags = ["--steps", "6", "--batch", "4", "--seed", "11", "--lr", "3e-3", "--no-eval", "--no-grad"]
    ref = reference(rnet_util, model_file, data_file, tmp_path / "ref", *flags)
    out = tmp_path / "out.safetensors"
    train = TrainConfig(lr=3e-3, warmup=6, total_steps=6, batch_windows=4)
    log = run(Job(input=model_file, output=out, data=data_file, steps=6, train=train, seed=11,
                  log_every=100))
    for mine, theirs in zip(log["steps"], ref["train"]["steps"], strict=True):
        assert mine["step"] == theirs["step"]
        assert np.float32(mine["lr"]) == np.float32(theirs["lr"])
        assert math.isclose(mine["loss"], theirs["loss"], rel_tol=1e-4), (mine, theirs)
        assert math.isclose(mine["grad_norm"], theirs["grad_norm"], rel_tol=1e-3), (mine, theirs)
    want = load_file(str(tmp_path / "ref" / "trained.safetensors"))
    got = load_file(str(out))
    for name, w in want.items():
        start = tensors[name]
        moved = float((w - start).abs().max())
        worst = float((got[name] - w).abs().max())
        # Six Adam steps move each weight by up to ~6·lr; the two engines agree to well within 1 %.
        assert worst <= 1e-2 * moved + 1e-7, f"{name}: diff {worst:.3e}, moved {moved:.3e}"
