"""SimMMDG (Dong et al., NeurIPS 2023) as specified in method.md §8.

Each modality's LayerNorm-ed embedding z_k (B, d_k) is split in half: modality-shared ``z_k[:, :d/2]`` and
modality-specific ``z_k[:, d/2:]``. Loss terms (weights from the ``SimMMDG`` params section):

* ``ce_fused``: CE of the fused head on the concatenation of the full embeddings;
* ``supcon``: supervised contrastive loss across modalities on the projected shared halves (MLP to
  ``proj_dim``, temperature ``temperature``), weight ``contrastive_weight``;
* ``distance``: −Σ_k MSE(shared_k, specific_k) pushing the two halves apart, weight ``distance_weight``;
* ``translation``: Σ_{k≠j} MSE(T_{k→j}(z_k), z_j) with one MLP per ordered pair, weight ``translation_weight``
  (absent with a single modality).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mbcd.algorithms.base import Algorithm
from mbcd.algorithms.components.losses import supcon_loss
from mbcd.registries import ALGORITHMS


def _mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_out))


@ALGORITHMS.register("SimMMDG")
class SimMMDG(Algorithm):
    """Shared/specific split embeddings with cross-modal contrastive, distance and translation losses."""

    def __init__(self, modalities: tuple[str, ...], num_classes: int, hparams: dict[str, Any]) -> None:
        super().__init__(modalities, num_classes, hparams)
        sec = self.section
        self.proj_dim = int(sec.get("proj_dim", 128))
        self.temperature = float(sec.get("temperature", 0.1))
        self.weights = {
            "supcon": float(sec.get("contrastive_weight", 3.0)),
            "distance": float(sec.get("distance_weight", 0.7)),
            "translation": float(sec.get("translation_weight", 0.1)),
        }
        self.network = self.build_network(unimodal_heads=False)
        dims = self.network.dims
        odd = [m for m, d in dims.items() if d % 2]
        if odd:
            raise ValueError(f"SimMMDG splits each embedding in half; {odd[0]} has odd width {dims[odd[0]]}")
        self.proj = nn.ModuleDict({m: _mlp(d // 2, d // 2, self.proj_dim) for m, d in dims.items()})
        self.translate = nn.ModuleDict(
            {f"{k}_to_{j}": _mlp(dims[k], max(dims[k], dims[j]), dims[j]) for k in dims for j in dims if k != j}
        )
        self.optimizer = self.make_optimizer()

    def update(self, batch: dict[str, Tensor], step: int) -> dict[str, float]:
        self.check_batch(batch)
        y = batch["label"]
        z = self.network.encode(batch)
        terms = {"ce_fused": F.cross_entropy(self.network.fuse(z), y)}
        halves = {m: (z[m][:, : z[m].shape[1] // 2], z[m][:, z[m].shape[1] // 2 :]) for m in self.modalities}
        views = torch.stack([self.proj[m](halves[m][0]) for m in self.modalities], dim=1)  # (B, M, proj_dim)
        terms["supcon"] = self.weights["supcon"] * supcon_loss(views, y, self.temperature)
        dist = torch.stack([F.mse_loss(shared, specific) for shared, specific in halves.values()]).sum()
        terms["distance"] = -self.weights["distance"] * dist
        pairs = [(k, j) for k in self.modalities for j in self.modalities if k != j]
        if pairs:
            trans = torch.stack([F.mse_loss(self.translate[f"{k}_to_{j}"](z[k]), z[j]) for k, j in pairs]).sum()
            terms["translation"] = self.weights["translation"] * trans
        return self.step(terms, step)
