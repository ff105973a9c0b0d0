"""The training loop, single-process or under ``torchrun``.

Data parallelism: every rank draws the same global batch of ``batch_windows`` windows (the
sampler is seeded by ``(seed, step)``, so no data moves between ranks) and trains on its own
contiguous ``batch_windows / world`` of them. With DDP (Gloo on CPU, NCCL on GPU) the gradients
are averaged across ranks, which is the gradient of the mean loss over the global batch, so a run
on ``W`` ranks follows the same loss curve as one rank with the same global batch, up to float
rounding. With ``--fsdp`` the parameters, gradients and AdamW moments are sharded across ranks
(PyTorch's ``fully_shard``, per layer and at the root) for models that do not fit one device; the
maths is the same. Rank 0 gathers the full weights at the end and writes ``{output}``.
"""

from __future__ import annotations

import gc
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from .data import DataSource
from .io import load_model, save_model
from .model import V5Model
from .optim import TrainConfig, clip_scale, lr_at, make_optimizer


class NonFinite(RuntimeError):
    """The loss or the gradient norm of an update was NaN or infinite (no update was applied)."""


@dataclass
class Job:
    """One training run: the files, the budget and the settings."""

    input: Path
    output: Path
    data: Path
    steps: int
    train: TrainConfig
    window: int | None = None
    holdout: float = 0.01
    seed: int | None = None
    fsdp: bool = False
    device: str = "auto"
    scan_chunk: int = 64
    scan_dtype: str = "float64"
    log_every: int = 10
    log_json: Path | None = None


@dataclass
class Dist:
    """Where this process runs: rank, world size and device."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> Dist:
    """Joins the ``torchrun`` process group when launched by it (``WORLD_SIZE`` set): NCCL when
    the device is a GPU, else Gloo. A plain ``python -m rnet_trainer`` is rank 0 of 1."""
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but PyTorch sees no CUDA device")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        # Full f32 products and convolutions, as the Rust engine (no TF32).
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(rank=rank, world=world, device=dev)


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if hasattr(t, "to_local") else t


def grad_norm(model: torch.nn.Module, d: Dist, sharded: bool) -> float:
    """Global L2 norm of the gradient, accumulated in f64 (over shards when sharded)."""
    sq = torch.zeros((), dtype=torch.float64, device=d.device)
    for p in model.parameters():
        if p.grad is not None:
            sq += _local(p.grad).double().pow(2).sum()
    if sharded and d.world > 1:
        dist.all_reduce(sq)
    return math.sqrt(float(sq))


def wrap(model: V5Model, d: Dist, fsdp: bool) -> torch.nn.Module:
    """The model as the training loop calls it: itself, DDP, or FSDP-sharded."""
    if d.world == 1:
        return model
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        for layer in model.layers:
            fully_shard(layer)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [d.device.index] if d.device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def full_state(model: torch.nn.Module, d: Dist, fsdp: bool) -> dict[str, torch.Tensor]:
    """Every weight, full size, on rank 0 (empty elsewhere under FSDP)."""
    if fsdp and d.world > 1:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_model_state_dict(model, options=opts)
    inner = model.module if hasattr(model, "module") else model
    return {k: v.detach().cpu() for k, v in inner.state_dict().items()}


def run(job: Job) -> dict:
    """Trains ``job.steps`` updates from ``job.input`` and (on rank 0) writes ``job.output``.
    Returns the per-step log. Raises :class:`NonFinite`, ``ValueError`` on bad input."""
    d = init_distributed(job.device)
    cfg, tensors, meta = load_model(job.input)
    window = job.window or cfg.window
    gb = job.train.batch_windows
    if gb % d.world != 0:
        raise ValueError(f"--batch {gb} is not a multiple of the {d.world} ranks")
    per_rank = gb // d.world
    seed = job.seed
    if seed is None:
        import hashlib

        seed = int.from_bytes(hashlib.sha256(job.input.read_bytes()).digest()[:8], "little")
    source = DataSource.open(job.data, window, job.holdout, seed)

    model = V5Model(cfg, job.scan_chunk, getattr(torch, job.scan_dtype))
    model.load_state_dict(tensors)
    model.to(d.device)
    net = wrap(model, d, job.fsdp)
    opt = make_optimizer(net, job.train)
    sharded = job.fsdp and d.world > 1

    log = {
        "world": d.world,
        "per_rank_windows": per_rank,
        "seed": seed,
        "window": window,
        "params": cfg.param_count(),
        # Parameters this rank holds: all of them with DDP, about 1/world with FSDP.
        "local_params": sum(_local(p.detach()).numel() for p in net.parameters()),
        "steps": [],
    }
    start = time.perf_counter()
    trained_bytes = 0
    for i in range(1, job.steps + 1):
        inputs, targets = source.batch(i - 1, gb)
        lo = d.rank * per_rank
        x = torch.from_numpy(inputs[lo : lo + per_rank]).to(d.device)
        y = torch.from_numpy(targets[lo : lo + per_rank]).to(d.device)
        loss = net(x, y)
        loss.backward()
        norm = grad_norm(net, d, sharded)
        mean_loss = loss.detach().double()
        if d.world > 1:
            dist.all_reduce(mean_loss)
            mean_loss /= d.world
        mean_loss = float(mean_loss)
        if not (math.isfinite(mean_loss) and math.isfinite(norm)):
            raise NonFinite(f"non-finite loss or gradient at step {i} (loss {mean_loss}, grad norm {norm})")
        lr = lr_at(job.train, i)
        scale = clip_scale(norm, job.train.clip)
        if scale != 1.0:
            for p in net.parameters():
                if p.grad is not None:
                    p.grad.mul_(scale)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        opt.zero_grad(set_to_none=True)
        trained_bytes += gb * window
        elapsed = time.perf_counter() - start
        log["steps"].append(
            {"step": i, "loss": mean_loss, "grad_norm": norm, "lr": lr, "elapsed_s": elapsed}
        )
        if d.main and (i % max(job.log_every, 1) == 0 or i == job.steps):
            print(
                f"step {i}/{job.steps} loss {mean_loss:.4f} nats/byte grad_norm {norm:.3f} "
                f"lr {lr:.2e} {trained_bytes / max(elapsed, 1e-9):.0f} bytes/s",
                flush=True,
            )
    elapsed = time.perf_counter() - start
    log["bytes"] = trained_bytes
    log["elapsed_s"] = elapsed
    log["bytes_per_sec"] = trained_bytes / max(elapsed, 1e-9)
    state = full_state(net, d, job.fsdp)
    # Free the wrapped model and its optimizer, which hold the process group's communication
    # state, before the group is destroyed: torn down in the other order (at interpreter exit)
    # a Gloo rank sometimes aborted after training ("terminate called without an active
    # exception", 2 runs of 12 next to a busy core).
    del opt, net, model
    gc.collect()
    if d.main:
        save_model(job.output, state, meta)
        if job.log_json:
            Path(job.log_json).write_text(json.dumps(log))
    if d.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return log
