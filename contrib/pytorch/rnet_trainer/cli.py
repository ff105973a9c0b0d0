"""Command line: ``python -m rnet_trainer --input {input} --output {output} --data {data}
--steps {steps} [options]``, the shape ``rnet-miner -trainer-cmd`` expects.

Exit codes: 0 the weights are in ``--output``; 2 bad arguments or input (a one-line message on
stderr); 3 the loss or gradient became non-finite (nothing written; the miner goes on from its last
good weights).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .optim import TrainConfig


def parser() -> argparse.ArgumentParser:
    """The argument parser (defaults are `rnet-util train`'s)."""
    p = argparse.ArgumentParser(
        prog="rnet_trainer",
        description="Train a ResonanceNet V5 model (safetensors in, safetensors out) with PyTorch; "
        "run under torchrun for data parallelism.",
    )
    p.add_argument("--input", required=True, type=Path, help="model to start from ({input})")
    p.add_argument("--output", required=True, type=Path, help="where the weights go ({output})")
    p.add_argument("--data", required=True, type=Path, help="training bytes ({data})")
    p.add_argument("--steps", required=True, type=int, help="AdamW updates ({steps})")
    p.add_argument("--batch", type=int, default=16, help="global windows per update (16)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (3e-3)")
    p.add_argument("--min-lr-ratio", type=float, default=0.1, help="final lr / peak lr (0.1)")
    p.add_argument("--warmup", type=int, default=None, help="warmup updates (min(20, steps))")
    p.add_argument("--total-steps", type=int, default=None, help="end of the cosine (steps)")
    p.add_argument("--weight-decay", type=float, default=0.1, help="on matrices only (0.1)")
    p.add_argument("--clip", type=float, default=1.0, help="global gradient-norm clip, 0 = off (1.0)")
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.95)
    p.add_argument("--eps", type=float, default=1e-8)
    p.add_argument("--window", type=int, default=None, help="training window (the model's)")
    p.add_argument("--holdout", type=float, default=0.01, help="tail of the data not trained on")
    p.add_argument(
        "--seed", type=int, default=None,
        help="batch sampler seed (default: from the input's hash, so each run draws new batches)",
    )
    p.add_argument("--fsdp", action="store_true", help="shard the model across ranks (FSDP)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (auto: cuda when present)")
    p.add_argument("--threads", type=int, default=None, help="intra-op CPU threads per rank")
    p.add_argument("--scan-chunk", type=int, default=64, help="minGRU log-domain scan chunk (64)")
    p.add_argument(
        "--scan-dtype", choices=["float64", "float32"], default="float64",
        help="precision of the log-domain scan terms (float64: agrees with the Rust engine to 1e-5)",
    )
    p.add_argument("--log-every", type=int, default=10, help="print a progress line every N updates")
    p.add_argument("--log-json", type=Path, default=None, help="write the per-update log here")
    return p


def main(argv: list[str] | None = None) -> int:
    """Runs the trainer; returns the process exit code."""
    args = parser().parse_args(argv)
    if args.steps < 1:
        print("rnet_trainer: --steps must be at least 1", file=sys.stderr)
        return 2
    if args.batch < 1:
        print("rnet_trainer: --batch must be at least 1", file=sys.stderr)
        return 2
    import torch

    from .train import Job, NonFinite, run

    if args.threads:
        torch.set_num_threads(args.threads)
    train = TrainConfig(
        lr=args.lr,
        min_lr_ratio=args.min_lr_ratio,
        warmup=min(20, args.steps) if args.warmup is None else args.warmup,
        total_steps=args.steps if args.total_steps is None else args.total_steps,
        batch_windows=args.batch,
        weight_decay=args.weight_decay,
        clip=args.clip,
        beta1=args.beta1,
        beta2=args.beta2,
        eps=args.eps,
    )
    job = Job(
        input=args.input,
        output=args.output,
        data=args.data,
        steps=args.steps,
        train=train,
        window=args.window,
        holdout=args.holdout,
        seed=args.seed,
        fsdp=args.fsdp,
        device=args.device,
        scan_chunk=args.scan_chunk,
        scan_dtype=args.scan_dtype,
        log_every=args.log_every,
        log_json=args.log_json,
    )
    try:
        run(job)
    except NonFinite as e:
        print(f"rnet_trainer: {e}", file=sys.stderr)
        return 3
    except (ValueError, OSError) as e:
        print(f"rnet_trainer: {e}", file=sys.stderr)
        return 2
    return 0
