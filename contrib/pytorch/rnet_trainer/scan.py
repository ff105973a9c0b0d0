"""The minGRU recurrence as a chunked log-domain (Heinsen) scan, differentiable by autograd.

``h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ g(h̃_t)``, ``z = σ(k)``, ``h_{−1} = 0``. With
``a_t = ln(1 − z_t) = −softplus(k_t)`` and ``ln b_t = −softplus(−k_t) + ln g(h̃_t)``
(``ln g(x) = ln(x + 0.5)`` for ``x ≥ 0``, else ``−softplus(−x)``), inside a chunk
``h_t = exp(a*_t + logcumsumexp_{s≤t}(ln b_s − a*_s))`` with ``a* = cumsum a``; each chunk's last
state is carried into the next (``h_t += exp(a*_t) · h_start``). Chunks of 64 positions, as
`rnet-training`'s parallel scan (docs/training.md "The minGRU scan"): short chunks keep ``|a*|``
small. The log-domain terms are evaluated in f64 by default (``dtype``): in f32, ``a*_t`` and the
``logcumsumexp`` cancel to within ``|a*|·2⁻²⁴``, which at strong forget gates put logits 1.5e-4 and
gradients 5e-4 (relative) away from the sequential recurrence the Rust code runs; in f64 both
agree to 1e-5 (tests/test_agreement.py; measured at chunks 64/16/8 in f32: gradients 5.4e-4,
5.2e-5, 2.0e-5). The cost is confined to the element-wise scan; the products stay f32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SCAN_CHUNK = 64


def log_g(x: torch.Tensor) -> torch.Tensor:
    """``ln g(x)``; both branches are finite everywhere so the gradient of ``where`` is clean."""
    return torch.where(x >= 0, torch.log(torch.clamp(x, min=0.0) + 0.5), -F.softplus(-x))


def mingru_scan(
    k: torch.Tensor,
    ht: torch.Tensor,
    chunk: int = SCAN_CHUNK,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """The hidden states ``h [B, T, d]`` for gate pre-activations ``k`` and candidates ``ht``
    (both ``[B, T, d]``), each window from the zero state; the scan runs in ``dtype`` and the
    result has ``k``'s dtype."""
    out_dtype = k.dtype
    k = k.to(dtype)
    ht = ht.to(dtype)
    log_a = -F.softplus(k)
    log_b = -F.softplus(-k) + log_g(ht)
    outs = []
    carry = None
    for start in range(0, k.shape[1], max(chunk, 1)):
        la = log_a[:, start : start + chunk]
        lb = log_b[:, start : start + chunk]
        a_star = torch.cumsum(la, dim=1)
        h = torch.exp(a_star + torch.logcumsumexp(lb - a_star, dim=1))
        if carry is not None:
            h = h + torch.exp(a_star) * carry.unsqueeze(1)
        carry = h[:, -1]
        outs.append(h)
    return torch.cat(outs, dim=1).to(out_dtype)


def mingru_sequential(k: torch.Tensor, ht: torch.Tensor) -> torch.Tensor:
    """The same recurrence one position at a time (reference for tests)."""
    z = torch.sigmoid(k)
    g = torch.where(ht >= 0, ht + 0.5, torch.sigmoid(ht))
    h = torch.zeros_like(k[:, 0])
    outs = []
    for t in range(k.shape[1]):
        h = (1 - z[:, t]) * h + z[:, t] * g[:, t]
        outs.append(h)
    return torch.stack(outs, dim=1)
