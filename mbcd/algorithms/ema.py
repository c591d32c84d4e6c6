"""EMA-only baseline (method.md §8): ERM plus a weight-averaged teacher that is evaluated.

The paper's ablation row (ERM 56.47 → 60.94 on EPIC A+F): the same training signal as ERM; the teacher
(Eq. 7, ``teacher`` params section) only averages the student's weights and does not teach.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from mbcd.algorithms.components.teacher import WeightAveragedTeacher
from mbcd.algorithms.erm import ERM
from mbcd.registries import ALGORITHMS


@ALGORITHMS.register("EMA")
class EMA(ERM):
    """ERM + Θ_T ← β Θ_T + (1−β) Θ_S after every step; ``predict(which='teacher')`` uses Θ_T."""

    has_teacher = True

    def __init__(self, modalities: tuple[str, ...], num_classes: int, hparams: dict[str, Any]) -> None:
        super().__init__(modalities, num_classes, hparams)
        self.teacher = WeightAveragedTeacher.from_params(self.network.fused_copy(), self.section["teacher"])

    def update(self, batch: dict[str, Tensor], step: int) -> dict[str, float]:
        out = super().update(batch, step)
        out["teacher/beta"] = self.teacher.update(self.network)
        return out
