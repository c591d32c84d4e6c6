"""Adaptive Modality Dropout, AMD (method.md §2, Eqs. 2–4).

s_k = Σ_i max_c softmax(f^k(x_i))_c (Eq. 2, batch confidence, correctness ignored, detached);
r_k = 1/(M−1) Σ_{j≠k} s_k / s_j (Eq. 3, relative learning speed);
p_k = tanh(max(r_k − 1, 0)) (Eq. 4), or with a floor b: p_k = b + (1−b)·tanh(r_k − 1) for r_k > 1;
keep mask D_k = 1 − Bernoulli(p_k) multiplies z_k before concatenation. The least confident modality is never
dropped (p = 0), so every sample keeps at least one modality. ``mode: fixed`` uses a constant p for every
modality except the least confident one (Table 5's "fixed 0.5"); ``mode: none`` never drops. Under
data-parallel training s_k is summed over ranks first, so every rank draws from the same p_k.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mbcd.distributed import all_reduce_sum

MODES = ("adaptive", "fixed", "none")
GRANULARITIES = ("per_sample", "per_batch")


def batch_confidence(logits: Tensor) -> Tensor:
    """s_k (Eq. 2): the sum over the batch of the max softmax probability, detached, float32 scalar."""
    return torch.softmax(logits.detach().float(), dim=1).max(dim=1).values.sum()


def relative_speed(s: Tensor) -> Tensor:
    """r (Eq. 3) for confidences ``s`` of shape (M,); a single modality gets r = 1."""
    m = s.numel()
    if m == 1:
        return torch.ones_like(s)
    ratio = s[:, None] / s[None, :]  # (M, M): ratio[k, j] = s_k / s_j
    return (ratio.sum(dim=1) - 1.0) / (m - 1)  # drop the j = k term (= 1)


def drop_probabilities(s: Tensor, mode: str = "adaptive", p: float = 0.5, floor: float = 0.0) -> Tensor:
    """p_k for confidences ``s`` (M,): Eq. 4 (adaptive, with floor), constant (fixed) or zeros (none)."""
    if mode not in MODES:
        raise ValueError(f"amd.mode: {mode!r} is not allowed; expected one of: {', '.join(MODES)}")
    if mode == "none" or s.numel() == 1:
        return torch.zeros_like(s)
    if mode == "adaptive":
        r = relative_speed(s)
        probs = torch.where(r > 1.0, floor + (1.0 - floor) * torch.tanh(r - 1.0), torch.zeros_like(r))
    else:
        probs = torch.full_like(s, float(p))
    probs[torch.argmin(s)] = 0.0  # the least confident modality is always kept
    return probs


def sample_masks(probs: dict[str, float], batch_size: int, granularity: str, device: Any) -> dict[str, Tensor]:
    """Keep masks D_k = 1 − Bernoulli(p_k): (B, 1) per sample or (1, 1) for the whole batch."""
    if granularity not in GRANULARITIES:
        raise ValueError(
            f"amd.granularity: {granularity!r} is not allowed; expected one of: {', '.join(GRANULARITIES)}"
        )
    shape = (batch_size, 1) if granularity == "per_sample" else (1, 1)
    return {m: (torch.rand(shape, device=device) >= p).float() for m, p in probs.items()}


class AdaptiveModalityDropout:
    """The AMD component configured from the ``amd`` params section; call it on first-pass uni-modal logits."""

    def __init__(self, section: dict[str, Any]) -> None:
        self.mode = section.get("mode", "adaptive")
        self.granularity = section.get("granularity", "per_sample")
        self.p = float(section.get("p", 0.5))
        self.floor = float(section.get("floor", 0.0))
        drop_probabilities(torch.ones(2), self.mode, self.p, self.floor)  # validates mode
        if self.granularity not in GRANULARITIES:
            raise ValueError(
                f"amd.granularity: {self.granularity!r} is not allowed; expected one of: {', '.join(GRANULARITIES)}"
            )

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def __call__(self, logits: dict[str, Tensor]) -> tuple[dict[str, Tensor] | None, dict[str, float]]:
        """Masks (None when nothing can be dropped) and diagnostics ``amd/{s,r,p}/<modality>``."""
        mods = list(logits)
        first = logits[mods[0]]
        s = all_reduce_sum(torch.stack([batch_confidence(logits[m]) for m in mods]))  # (M,), global batch
        r = relative_speed(s)
        probs = drop_probabilities(s, self.mode, self.p, self.floor)
        stats: dict[str, float] = {}
        for i, m in enumerate(mods):
            stats[f"amd/s/{m}"] = float(s[i])
            stats[f"amd/r/{m}"] = float(r[i])
            stats[f"amd/p/{m}"] = float(probs[i])
        if not bool((probs > 0).any()):
            return None, stats
        p_dict = {m: float(probs[i]) for i, m in enumerate(mods)}
        return sample_masks(p_dict, first.shape[0], self.granularity, first.device), stats
