"""The chunked log-domain minGRU scan computes the sequential recurrence (in f64, to rounding),
including across chunk boundaries and a partial last chunk, and its gradient is the recurrence's."""

import torch

from rnet_trainer.scan import mingru_scan, mingru_sequential


def test_log_domain_scan_is_the_sequential_recurrence():
    g = torch.Generator().manual_seed(0)
    k = (3 * torch.randn(3, 150, 8, generator=g, dtype=torch.float64)).requires_grad_()
    ht = (3 * torch.randn(3, 150, 8, generator=g, dtype=torch.float64)).requires_grad_()
    want = mingru_sequential(k, ht)
    for chunk in (1, 7, 64, 150, 200):
        got = mingru_scan(k, ht, chunk)
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-12), chunk
    w = torch.randn(want.shape, generator=g, dtype=torch.float64)
    gk, gh = torch.autograd.grad((want * w).sum(), (k, ht))
    sk, sh = torch.autograd.grad((mingru_scan(k, ht, 64) * w).sum(), (k, ht))
    assert torch.allclose(sk, gk, rtol=1e-8, atol=1e-10)
    assert torch.allclose(sh, gh, rtol=1e-8, atol=1e-10)
