"""Training throughput of this PyTorch trainer beside the Rust CPU engine at a network's genesis
shape (default mainnet: d = 384, L = 6, S = 64, F = 768, kernels {3, 7, 15, 31, 63}, T = 512),
on the bundled corpus, the same batch (default 4 windows) and settings.

    python contrib/pytorch/bench_throughput.py --rnet-util target/release/rnet-util

Build ``rnet-util`` with ``--release`` (a debug build of the Rust engine is far slower). Bytes/s
are steady-state figures: the first update (allocation, warm-up) is left out. Prints a Markdown
table and, with ``--json``, the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def steady(steps: list[dict], bytes_per_step: int) -> float:
    """Bytes/s over updates 2..N (``elapsed_s`` is cumulative after each update)."""
    if len(steps) < 2:
        return bytes_per_step * len(steps) / steps[-1]["elapsed_s"]
    return bytes_per_step * (len(steps) - 1) / (steps[-1]["elapsed_s"] - steps[0]["elapsed_s"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rnet-util", required=True, type=Path)
    ap.add_argument("--network", default="mainnet")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--ddp", action="store_true", help="also torchrun with one rank per core")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    from rnet_trainer.optim import TrainConfig
    from rnet_trainer.train import Job, run

    torch.set_num_threads(args.threads)
    data = HERE.parent.parent / "data" / "kjv.txt"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ck, st = tmp / "g.rnck", tmp / "g.safetensors"
        util = str(args.rnet_util)
        subprocess.run([util, "checkpoint", "init", "--network", args.network, "--out", str(ck)],
                       check=True, capture_output=True)
        subprocess.run([util, "checkpoint", "export-safetensors", str(ck), str(st)], check=True,
                       capture_output=True)
        common = ["--steps", str(args.steps), "--batch", str(args.batch), "--seed", "1"]
        env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
        for scan in ("sequential", "parallel"):
            flags = ["--parallel-scan"] if scan == "parallel" else []
            out = subprocess.run(
                [util, "dev-reference", "--model", str(st), "--data", str(data), "--out",
                 str(tmp / "ref"), "--no-eval", "--no-grad", *common, *flags],
                check=True, capture_output=True, text=True, env=env,
            )
            ref = json.loads(out.stdout)
            window = ref["config"]["window"]
            bps = steady(ref["train"]["steps"], args.batch * window)
            rows.append((f"Rust engine (rnet-training), {scan} scan", bps, ref["train"]["steps"]))
        train = TrainConfig(lr=3e-3, warmup=min(20, args.steps), total_steps=args.steps,
                            batch_windows=args.batch)
        for dtype in ("float64", "float32"):
            log = run(Job(input=st, output=tmp / "o.safetensors", data=data, steps=args.steps,
                          train=train, seed=1, scan_dtype=dtype, log_every=10**9))
            bps = steady(log["steps"], args.batch * log["window"])
            rows.append((f"PyTorch {torch.__version__}, 1 process, scan in {dtype}", bps,
                         log["steps"]))
        if args.ddp:
            n = args.threads
            log_file = tmp / "ddp.json"
            subprocess.run(
                [sys.executable, "-m", "torch.distributed.run", "--standalone",
                 f"--nproc_per_node={n}", "-m", "rnet_trainer", "--input", str(st), "--output",
                 str(tmp / "d.safetensors"), "--data", str(data), *common, "--log-json",
                 str(log_file), "--log-every", str(10**9)],
                check=True, capture_output=True, cwd=HERE,
                env=dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo",
                         PYTHONPATH=str(HERE)),
            )
            log = json.loads(log_file.read_text())
            bps = steady(log["steps"], args.batch * log["window"])
            rows.append((f"PyTorch DDP (Gloo), {n} ranks × 1 thread", bps, log["steps"]))
    print(f"| {args.network} genesis, {args.batch} windows/update, {args.threads} threads "
          f"| bytes/s | s/update |")
    print("|---|---|---|")
    for name, bps, _ in rows:
        print(f"| {name} | {bps:,.0f} | {args.batch * window / bps:.2f} |")
    if args.json:
        print(json.dumps([{"name": n, "bytes_per_sec": b, "steps": s} for n, b, s in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
