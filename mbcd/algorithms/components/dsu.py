"""DSU feature-statistics noise (Li et al., ICLR 2022), optional in MBCD (method.md §7; the port, not the paper).

For a feature map h (B, C, ...): per-sample, per-channel mean μ and standard deviation σ over the positions; their
batch spreads Σ_μ = std_B(μ), Σ_σ = std_B(σ); resampled β = μ + ε·Σ_μ, γ = σ + ε·Σ_σ with ε ~ N(0, 1); output
(h − μ)/σ · γ + β. Applied with probability p per call, in training only and in the first pass only (MBCD
applies it to the stem output, i.e. before the trainable stage).
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-6


def dsu_perturb(h: Tensor, p: float = 0.5, eps: float = EPS) -> Tensor:
    """Return ``h`` with resampled channel statistics with probability ``p`` (needs B > 1 and a position axis)."""
    if h.dim() < 3 or h.shape[0] < 2 or p <= 0.0 or float(torch.rand(())) >= p:
        return h
    dims = tuple(range(2, h.dim()))
    mu = h.mean(dim=dims, keepdim=True)  # (B, C, 1, ...)
    sig = (h.var(dim=dims, keepdim=True) + eps).sqrt()
    spread_mu = (mu.var(dim=0, keepdim=True) + eps).sqrt()  # (1, C, 1, ...)
    spread_sig = (sig.var(dim=0, keepdim=True) + eps).sqrt()
    beta = mu + torch.randn_like(mu) * spread_mu
    gamma = sig + torch.randn_like(sig) * spread_sig
    return (h - mu) / sig * gamma + beta
