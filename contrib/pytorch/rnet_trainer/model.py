"""The ResonanceNet V5 network in PyTorch, parameter for parameter the checkpoint schema.

The maths is docs/protocol.md Part III §3 (what `rnet_model`'s evaluator computes) and
docs/training.md (what `rnet-training` differentiates):

* ``x_t = embed[b_t]``;
* per layer: ``u = RMSNorm(x)·norm1``; ``c_t = Σ_b Σ_{k<K_b} conv.b[k] ⊙ u_{t−k}`` (zero before
  the window start); minGRU ``z = σ(wz c)``, ``h̃ = wh c``,
  ``h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ g(h̃_t)`` from ``h_{−1} = 0``, ``x += wo h``; slot memory
  ``v = RMSNorm(x)·norm2``, ``α = softmax((wq v)·keysᵀ / √d)``, ``x += wm (α · values)``; SwiGLU
  ``w = RMSNorm(x)·norm3``, ``x += w_down (SiLU(w_gate w) ⊙ (w_up w))``;
* ``logits = head · (RMSNorm(x)·norm_f)``; loss: mean next-byte cross-entropy in nats.

``RMSNorm(x) = x / sqrt(mean(x²) + 1e-6)``; ``g(x) = x + 0.5`` for ``x ≥ 0``, else ``σ(x)``.

``state_dict()`` keys are exactly the safetensors tensor names (``embed``, ``layers.{i}.norm1``,
``layers.{i}.conv.{b}``, ``layers.{i}.gru.wz|wh|wo``, ``layers.{i}.norm2``,
``layers.{i}.slot.wq|keys|values|wm``, ``layers.{i}.norm3``, ``layers.{i}.ffn.w_gate|w_up|w_down``,
``norm_f``, ``head``) with the schema shapes (``[out, in]`` for matrices), so a file written by
``rnet-util checkpoint export-safetensors`` loads with ``load_state_dict`` and the weights go back
with ``save_file``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .scan import SCAN_CHUNK, mingru_scan

VOCAB = 256
RMS_EPS = 1e-6
MODEL_FORMAT = "resonancenet-v5"


@dataclass(frozen=True)
class V5Config:
    """The shape of a V5 network (``rnet_model::ModelConfig``)."""

    d_model: int
    n_layers: int
    n_slots: int
    d_ff: int
    kernel_sizes: tuple[int, ...]
    window: int

    @property
    def max_kernel(self) -> int:
        """Longest convolution kernel."""
        return max(self.kernel_sizes)

    def validate(self) -> None:
        """Raises ``ValueError`` unless this is a shape `rnet_model` accepts."""
        d = self.d_model
        if not (1 <= d <= 4096 and d % 2 == 0):
            raise ValueError(f"d_model = {d} must be even and in 1..=4096")
        if not 1 <= self.n_layers <= 48:
            raise ValueError(f"n_layers = {self.n_layers} is outside 1..=48")
        if not 1 <= self.n_slots <= 1024:
            raise ValueError(f"n_slots = {self.n_slots} is outside 1..=1024")
        if self.d_ff != 2 * d:
            raise ValueError(f"d_ff = {self.d_ff} must be 2 * d_model = {2 * d}")
        if not 1 <= len(self.kernel_sizes) <= 8 or not all(1 <= k <= 63 for k in self.kernel_sizes):
            raise ValueError(f"kernel sizes {self.kernel_sizes} must be 1..=8 values in 1..=63")
        if not 1 <= self.window <= 4096:
            raise ValueError(f"window = {self.window} is outside 1..=4096")

    def metadata(self, height: int = 0) -> dict[str, str]:
        """The ``__metadata__`` map of a model export (``rnet_model::safetensors``)."""
        return {
            "format": MODEL_FORMAT,
            "height": str(height),
            "d_model": str(self.d_model),
            "n_layers": str(self.n_layers),
            "n_slots": str(self.n_slots),
            "d_ff": str(self.d_ff),
            "window": str(self.window),
            "kernel_sizes": ",".join(str(k) for k in self.kernel_sizes),
        }

    @staticmethod
    def from_metadata(meta: dict[str, str] | None) -> "V5Config":
        """The config a model export declares; ``ValueError`` when a key is missing or bad."""
        if not meta:
            raise ValueError("the model file has no __metadata__ (not a resonancenet-v5 export)")
        if meta.get("format", MODEL_FORMAT) != MODEL_FORMAT:
            raise ValueError(f"format {meta.get('format')!r} is not {MODEL_FORMAT!r}")
        try:
            cfg = V5Config(
                d_model=int(meta["d_model"]),
                n_layers=int(meta["n_layers"]),
                n_slots=int(meta["n_slots"]),
                d_ff=int(meta["d_ff"]),
                kernel_sizes=tuple(int(k) for k in meta["kernel_sizes"].split(",")),
                window=int(meta["window"]),
            )
        except (KeyError, ValueError) as e:
            raise ValueError(f"metadata entry missing or malformed: {e}") from e
        cfg.validate()
        return cfg

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor name with its shape, in checkpoint schema order."""
        d, s, f = self.d_model, self.n_slots, self.d_ff
        out: dict[str, tuple[int, ...]] = {"embed": (VOCAB, d)}
        for i in range(self.n_layers):
            p = f"layers.{i}."
            out[p + "norm1"] = (d,)
            for b, k in enumerate(self.kernel_sizes):
                out[p + f"conv.{b}"] = (k, d)
            for n in ("gru.wz", "gru.wh", "gru.wo"):
                out[p + n] = (d, d)
            out[p + "norm2"] = (d,)
            out[p + "slot.wq"] = (d, d)
            out[p + "slot.keys"] = (s, d)
            out[p + "slot.values"] = (s, d)
            out[p + "slot.wm"] = (d, d)
            out[p + "norm3"] = (d,)
            out[p + "ffn.w_gate"] = (f, d)
            out[p + "ffn.w_up"] = (f, d)
            out[p + "ffn.w_down"] = (d, f)
        out["norm_f"] = (d,)
        out["head"] = (VOCAB, d)
        return out

    def param_count(self) -> int:
        """Number of f32 parameters."""
        return sum(math.prod(s) for s in self.shapes().values())


def rms_norm(x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """``x / sqrt(mean(x²) + 1e-6) · gain`` over the last dimension."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + RMS_EPS) * gain


def _empty(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.zeros(*shape))


class MinGRU(nn.Module):
    """``gru.wz``, ``gru.wh``, ``gru.wo``."""

    def __init__(self, d: int):
        super().__init__()
        self.wz = _empty(d, d)
        self.wh = _empty(d, d)
        self.wo = _empty(d, d)


class SlotMemory(nn.Module):
    """``slot.wq``, ``slot.keys``, ``slot.values``, ``slot.wm``."""

    def __init__(self, d: int, s: int):
        super().__init__()
        self.wq = _empty(d, d)
        self.keys = _empty(s, d)
        self.values = _empty(s, d)
        self.wm = _empty(d, d)


class SwiGLU(nn.Module):
    """``ffn.w_gate``, ``ffn.w_up``, ``ffn.w_down``."""

    def __init__(self, d: int, f: int):
        super().__init__()
        self.w_gate = _empty(f, d)
        self.w_up = _empty(f, d)
        self.w_down = _empty(d, f)


class V5Layer(nn.Module):
    """One layer: conv block, minGRU, slot memory, SwiGLU, each with its RMSNorm gain."""

    def __init__(
        self, cfg: V5Config, scan_chunk: int = SCAN_CHUNK, scan_dtype: torch.dtype = torch.float64
    ):
        super().__init__()
        d = cfg.d_model
        self.scan_dtype = scan_dtype
        self.kernel_sizes = cfg.kernel_sizes
        self.kmax = cfg.max_kernel
        self.scale = 1.0 / math.sqrt(d)
        self.scan_chunk = scan_chunk
        self.norm1 = _empty(d)
        self.conv = nn.ParameterList([_empty(k, d) for k in cfg.kernel_sizes])
        self.gru = MinGRU(d)
        self.norm2 = _empty(d)
        self.slot = SlotMemory(d, cfg.n_slots)
        self.norm3 = _empty(d)
        self.ffn = SwiGLU(d, cfg.d_ff)

    def causal_conv(self, u: torch.Tensor) -> torch.Tensor:
        """``c_t = Σ_b Σ_{k<K_b} conv.b[k] ⊙ u_{t−k}`` for ``u [B, T, d]``: the branches summed
        into one kernel of ``max K`` taps (the conv is linear in its weights), applied as one
        depthwise ``conv1d`` over the left-padded sequence (tap ``k`` reads ``u_{t−k}``, so the
        kernel is flipped for PyTorch's cross-correlation)."""
        kmax = self.kmax
        weff = sum(F.pad(w, (0, 0, 0, kmax - w.shape[0])) for w in self.conv)
        d = u.shape[-1]
        weight = weff.flip(0).t().unsqueeze(1)  # [d, 1, kmax]
        x = F.pad(u.transpose(1, 2), (kmax - 1, 0))
        return F.conv1d(x, weight, groups=d).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = rms_norm(x, self.norm1)
        c = self.causal_conv(u)
        k = F.linear(c, self.gru.wz)
        ht = F.linear(c, self.gru.wh)
        h = mingru_scan(k, ht, self.scan_chunk, self.scan_dtype)
        x = x + F.linear(h, self.gru.wo)
        v = rms_norm(x, self.norm2)
        q = F.linear(v, self.slot.wq)
        alpha = torch.softmax(F.linear(q, self.slot.keys) * self.scale, dim=-1)
        x = x + F.linear(alpha @ self.slot.values, self.slot.wm)
        w = rms_norm(x, self.norm3)
        p = F.silu(F.linear(w, self.ffn.w_gate)) * F.linear(w, self.ffn.w_up)
        return x + F.linear(p, self.ffn.w_down)


class V5Model(nn.Module):
    """The whole network. ``forward(inputs)`` gives logits ``[B, T, 256]`` for byte inputs
    ``[B, T]`` (each row one window from the zero state); ``loss(inputs, targets)`` the mean
    cross-entropy in nats per byte (what `rnet-training` minimises)."""

    def __init__(
        self, cfg: V5Config, scan_chunk: int = SCAN_CHUNK, scan_dtype: torch.dtype = torch.float64
    ):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        d = cfg.d_model
        self.embed = _empty(VOCAB, d)
        self.layers = nn.ModuleList(
            [V5Layer(cfg, scan_chunk, scan_dtype) for _ in range(cfg.n_layers)]
        )
        self.norm_f = _empty(d)
        self.head = _empty(VOCAB, d)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, T, 256]``, or with ``targets`` the mean cross-entropy (nats per byte); the
        second form is what data-parallel wrappers call."""
        x = F.embedding(inputs.long(), self.embed)
        for layer in self.layers:
            x = layer(x)
        logits = F.linear(rms_norm(x, self.norm_f), self.head)
        if targets is None:
            return logits
        return F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1).long())

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-byte cross-entropy of a batch of windows, nats per byte."""
        return self(inputs, targets)


def position_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-position cross-entropy (nats) of ``logits [..., 256]`` against ``targets [...]``."""
    return F.cross_entropy(
        logits.reshape(-1, VOCAB), targets.reshape(-1).long(), reduction="none"
    ).reshape(targets.shape)


def eval_windows(length: int, window: int) -> list[tuple[int, int]]:
    """The evaluator's input ranges over a dataset of ``length`` bytes (protocol Part III §4):
    windows of ``window`` inputs at stride ``window``, only the last one possibly shorter."""
    p = max(length - 1, 0)
    return [(w, min(w + window, p)) for w in range(0, p, window)]


@torch.no_grad()
def evaluate(model: V5Model, data: bytes, batch_windows: int = 16) -> dict:
    """The canonical evaluation's numbers computed by this model (not bit-exact, within float
    rounding): per-position f32 losses summed in f64 per window, window sums in f64 in order.
    Returns ``total_nats``, ``mean_nats``, ``bytes``, ``windows`` and the per-position ``losses``
    and ``logits`` (CPU tensors)."""
    t = model.cfg.window
    device = next(model.parameters()).device
    buf = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    spans = eval_windows(len(data), t)
    logits_out, losses_out = [], []
    full = [s for s in spans if s[1] - s[0] == t]
    for i in range(0, len(full), batch_windows):
        chunk = full[i : i + batch_windows]
        inp = torch.stack([buf[a:b] for a, b in chunk]).to(device)
        tgt = torch.stack([buf[a + 1 : b + 1] for a, b in chunk]).to(device)
        lg = model(inp)
        logits_out.append(lg.reshape(-1, VOCAB).float().cpu())
        losses_out.append(position_losses(lg, tgt).reshape(-1, t).float().cpu())
    rest = [s for s in spans if s[1] - s[0] != t]
    for a, b in rest:
        inp = buf[a:b].unsqueeze(0).to(device)
        tgt = buf[a + 1 : b + 1].unsqueeze(0).to(device)
        lg = model(inp)
        logits_out.append(lg.reshape(-1, VOCAB).float().cpu())
        losses_out.append(position_losses(lg, tgt).float().cpu())
    total = 0.0
    for block in losses_out:
        for row in block.double():
            total += float(row.sum())
    losses = torch.cat([b.reshape(-1) for b in losses_out]) if losses_out else torch.zeros(0)
    logits = torch.cat(logits_out) if logits_out else torch.zeros(0, VOCAB)
    p = max(len(data) - 1, 0)
    return {
        "total_nats": total,
        "mean_nats": total / p if p else float("nan"),
        "bytes": p,
        "windows": len(spans),
        "losses": losses,
        "logits": logits,
    }
