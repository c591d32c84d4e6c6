"""ERM late fusion (method.md §8): per-modality encoders, LayerNorm, concatenation, fused head, CE on the fused
logits only. The reference row of every table."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from mbcd.algorithms.base import Algorithm
from mbcd.registries import ALGORITHMS


@ALGORITHMS.register("ERM")
class ERM(Algorithm):
    """Empirical risk minimisation on the fused prediction: L = CE(φ_mm(⊕_k z_k), y)."""

    def __init__(self, modalities: tuple[str, ...], num_classes: int, hparams: dict[str, Any]) -> None:
        super().__init__(modalities, num_classes, hparams)
        self.network = self.build_network(unimodal_heads=False)
        self.optimizer = self.make_optimizer()

    def loss_terms(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        logits = self.network.fuse(self.network.encode(batch))
        return {"ce_fused": F.cross_entropy(logits, batch["label"])}

    def update(self, batch: dict[str, Tensor], step: int) -> dict[str, float]:
        self.check_batch(batch)
        return self.step(self.loss_terms(batch), step)
