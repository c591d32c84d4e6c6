"""Thin helpers over ``torch.distributed``; every function is a no-op in a single process.

Algorithms call these where data-parallel training needs agreement across ranks: gradients are
averaged, and MBCD's batch confidences s_k are summed before r_k is formed (method.md §2).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (returns a new tensor; the input is untouched)."""
    if not is_distributed():
        return t
    out = t.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """In-place mean of ``.grad`` over ranks (what DDP does, for algorithms that step themselves)."""
    if not is_distributed():
        return
    n = world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(n)
