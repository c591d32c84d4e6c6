"""The weight-averaged teacher (method.md §4, Eq. 7): Θ_T ← β Θ_T + (1−β) Θ_S after every optimiser step.

One component covers the weight-averaging family: ``rule: ema`` (MBCD, the EMA baseline) or ``rule: sma``
(uniform running mean, as CMRF's teacher and SWAD). The teacher is a copy of the student's module(s), kept out
of the optimiser (``requires_grad=False``) and always in eval mode; it lives in the algorithm's state_dict so a
checkpoint carries it. Float buffers (BatchNorm running statistics) are averaged like parameters (the port);
integer buffers (``num_batches_tracked``) are copied.

Schedule, with t = number of optimiser steps so far (1-based) and k = t − start_step:

* t ≤ start_step: the teacher is reset to the student (it "starts" at start_step, CMRF style);
* ema: β_k = decay · min(1, k / warmup) (β ramps from 0 to decay over ``warmup`` steps; no ramp when 0);
* sma: Θ_T ← (n Θ_T + Θ_S) / (n + 1), n = models already in the mean (the copy it started from counts as 1),
  i.e. β = n / (n + 1); with start_step 0 the teacher is the mean of the student at steps 0..t.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

RULES = ("ema", "sma")


class WeightAveragedTeacher(nn.Module):
    """Holds ``self.model`` (the averaged copy) and updates it from a student module with the same names."""

    def __init__(
        self, model: nn.Module, rule: str = "ema", decay: float = 0.999, start_step: int = 0, warmup: int = 0
    ) -> None:
        super().__init__()
        if rule not in RULES:
            raise ValueError(f"teacher.rule: {rule!r} is not allowed; expected one of: {', '.join(RULES)}")
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"teacher.decay: must lie in (0, 1], got {decay}")
        if start_step < 0 or warmup < 0:
            raise ValueError(f"teacher.start_step / teacher.warmup must be >= 0, got {start_step} / {warmup}")
        self.model = model
        self.model.requires_grad_(False)
        self.rule, self.decay, self.start_step, self.warmup = rule, float(decay), int(start_step), int(warmup)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("num_averaged", torch.ones((), dtype=torch.long))
        super().train(False)

    @classmethod
    def from_params(cls, model: nn.Module, section: dict[str, Any]) -> WeightAveragedTeacher:
        """Build from a ``teacher`` params section (``rule``, ``decay``, optional ``start_step``, ``warmup``).

        ``enabled: false`` is only meaningful for MBCD (which then builds no teacher); elsewhere it is refused.
        """
        if not section.get("enabled", True):
            raise ValueError("teacher.enabled: false is not allowed here; this algorithm is defined by its teacher")
        return cls(
            model,
            rule=section["rule"],
            decay=section["decay"],
            start_step=section.get("start_step", 0),
            warmup=section.get("warmup", 0),
        )

    def train(self, mode: bool = True) -> WeightAveragedTeacher:
        """The teacher is always evaluated in eval mode (no dropout, BatchNorm running statistics)."""
        return super().train(False)

    def next_beta(self) -> float:
        """β the next :meth:`update` will use (0 = copy the student)."""
        t = int(self.num_updates) + 1
        k = t - self.start_step
        if k <= 0:
            return 0.0
        if self.rule == "sma":
            n = int(self.num_averaged)
            return n / (n + 1)
        return self.decay * min(1.0, k / self.warmup) if self.warmup > 0 else self.decay

    @torch.no_grad()
    def update(self, student: nn.Module) -> float:
        """One averaging step from ``student`` (call after the optimiser step); returns the β used."""
        beta = self.next_beta()
        src = dict(student.named_parameters())
        src.update(dict(student.named_buffers()))
        targets = list(self.model.named_parameters()) + list(self.model.named_buffers())
        for name, tensor in targets:
            if name not in src:
                raise KeyError(f"teacher tensor {name!r} has no counterpart in the student")
            s = src[name].detach()
            if beta == 0.0 or not tensor.is_floating_point():
                tensor.copy_(s)
            else:
                tensor.mul_(beta).add_(s.to(tensor.dtype), alpha=1.0 - beta)
        in_average = int(self.num_updates) + 1 > self.start_step
        self.num_averaged.fill_(int(self.num_averaged) + 1 if in_average else 1)
        self.num_updates += 1
        return beta

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)
