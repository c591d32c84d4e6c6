"""Gradient Consistency Constraint, GCC (method.md §3, Eqs. 5–6): the uni-modal look-ahead.

θ'_k = θ_k − α ∇_{θ_k} L_ce(θ_k, φ_k; x^k) (Eq. 5); the fused loss is then evaluated with the encoders at θ'
and its gradient flows back to θ. To first order this adds −α Σ_k ⟨∇L_uni,k, ∇L_mm⟩ (Eq. 6), rewarding
agreement between each modality's own gradient and the fused gradient on its encoder.

* ``order 1`` (default, the port): the inner gradient g is taken without a graph, so θ' = θ − α·g is a
  constant shift of θ and ∂L_mm(θ')/∂θ = ∇L_mm evaluated at θ'.
* ``order 2``: g keeps its graph (create_graph), so the gradient includes −α·H_uni·∇L_mm (exact Eq. 5).
* ``order 0``: θ' = θ (GCC off, the ablation).

Because encoder k only feeds L_uni,k, one gradient call on Σ_k L_uni,k gives every g_k at once. Under
data-parallel training the first-order inner gradient is averaged over ranks, as the outer one is.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import torch
from torch import Tensor

from mbcd.distributed import all_reduce_sum, is_distributed, world_size

ORDERS = (0, 1, 2)


def lookahead(loss: Tensor, params: dict[Hashable, Tensor], alpha: float, order: int = 1) -> dict[Hashable, Tensor]:
    """θ' = θ − α ∇_θ loss for every tensor in ``params`` (same keys); ``order`` as in the module docstring.

    ``loss``'s graph is retained so the caller can still back-propagate through it.
    """
    if order not in ORDERS:
        raise ValueError(f"gcc.order: {order!r} is not allowed; expected one of: 0, 1, 2")
    if order == 0 or alpha == 0.0 or not params:
        return dict(params)
    if order == 2 and is_distributed():
        raise ValueError("gcc.order: 2 is not supported under data-parallel training (use order 1)")
    keys = list(params)
    grads = torch.autograd.grad(
        loss, [params[k] for k in keys], retain_graph=True, create_graph=order == 2, allow_unused=True
    )
    out: dict[Hashable, Tensor] = {}
    n = world_size()
    for k, g in zip(keys, grads, strict=True):
        p = params[k]
        if g is None:  # a parameter that does not reach the loss keeps its value
            out[k] = p
            continue
        if order == 1:
            g = g.detach()
            if is_distributed():
                g = all_reduce_sum(g) / n
        out[k] = p - alpha * g
    return out


class GradientConsistency:
    """The GCC component configured from the ``gcc`` params section (``order``, ``alpha``)."""

    def __init__(self, section: dict[str, Any]) -> None:
        self.order = int(section.get("order", 1))
        self.alpha = float(section.get("alpha", 1.0e-4))
        if self.order not in ORDERS:
            raise ValueError(f"gcc.order: {self.order!r} is not allowed; expected one of: 0, 1, 2")

    @property
    def enabled(self) -> bool:
        return self.order > 0

    def __call__(self, loss: Tensor, params: dict[Hashable, Tensor]) -> dict[Hashable, Tensor]:
        return lookahead(loss, params, self.alpha, self.order)
