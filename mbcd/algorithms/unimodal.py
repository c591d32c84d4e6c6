"""The uni-modal baseline (method.md §8): one encoder, LayerNorm, one head, CE. Used for the imbalance
diagnostics (the paper's Fig. 1a: each modality trained alone vs. inside a fused model)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from mbcd.algorithms.base import Algorithm
from mbcd.registries import ALGORITHMS


@ALGORITHMS.register("Unimodal")
class Unimodal(Algorithm):
    """A single modality k: L = CE(φ(LN(θ_k(x^k))), y). Its only head is both the fused and the k head."""

    def __init__(self, modalities: tuple[str, ...], num_classes: int, hparams: dict[str, Any]) -> None:
        if len(tuple(modalities)) != 1:
            raise ValueError(f"Unimodal takes exactly one modality, got {'+'.join(modalities) or '(none)'}")
        super().__init__(modalities, num_classes, hparams)
        self.network = self.build_network(unimodal_heads=False)
        self.optimizer = self.make_optimizer()

    def update(self, batch: dict[str, Tensor], step: int) -> dict[str, float]:
        self.check_batch(batch)
        logits = self.network.fuse(self.network.encode(batch))
        return self.step({f"ce_{self.modalities[0]}": F.cross_entropy(logits, batch["label"])}, step)

    def predict_modalities(self, batch: dict[str, Tensor], which: str = "student") -> dict[str, Tensor]:
        logits = self.predict(batch, which)
        return {"fused": logits, self.modalities[0]: logits}
