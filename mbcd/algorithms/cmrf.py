"""CMRF (Fan et al., NeurIPS 2024) as specified in method.md §8.

A simple-moving-average teacher (``teacher`` section; rule sma, starting at ``start_step``) averages the
encoders, LayerNorms, fused head and the per-modality projections. Loss terms:

* ``ce_fused``: CE of the fused head; ``ce_<k>``: uni-modal CE, each × ``unimodal_weight``;
* ``supcon``: supervised contrastive loss across the student's modality projections (``proj_dim``,
  ``temperature``), × ``contrastive_weight``;
* ``mix``: for every ordered pair (i, j), teacher projections mixed t_ij = λ t_i + (1−λ) t_j with
  λ ~ Beta(mix_alpha, mix_alpha) per sample, folded so λ ≥ 0.5 (modality i dominates); the student's
  projection s_i is pulled toward t_ij (squared distance of L2-normalised vectors), audio anchors scaled by
  ``audio_mix_scale``; the mean over pairs × ``mix_weight`` (absent with a single modality).

The teacher is the evaluated model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mbcd.algorithms.base import Algorithm
from mbcd.algorithms.components.losses import supcon_loss
from mbcd.algorithms.components.teacher import WeightAveragedTeacher
from mbcd.models.fusion import MultiModalNet
from mbcd.registries import ALGORITHMS


@ALGORITHMS.register("CMRF")
class CMRF(Algorithm):
    """Cross-modal representation flattening: SMA teacher, teacher-mixed targets, contrastive + uni-modal CE."""

    has_teacher = True

    def __init__(self, modalities: tuple[str, ...], num_classes: int, hparams: dict[str, Any]) -> None:
        super().__init__(modalities, num_classes, hparams)
        sec = self.section
        self.temperature = float(sec.get("temperature", 0.1))
        self.mix_alpha = float(sec.get("mix_alpha", 0.1))
        self.audio_mix_scale = float(sec.get("audio_mix_scale", 0.5))
        self.weights = {
            "mix": float(sec.get("mix_weight", 3.0)),
            "supcon": float(sec.get("contrastive_weight", 3.0)),
            "unimodal": float(sec.get("unimodal_weight", 2.0)),
        }
        proj_dim = int(sec.get("proj_dim", 128))
        self.network = self.build_network(unimodal_heads=True)
        self.proj = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, proj_dim)) for m, d in self.network.dims.items()}
        )
        averaged = nn.ModuleDict({"net": self.network.fused_copy(), "proj": _copy(self.proj)})
        self.teacher = WeightAveragedTeacher.from_params(averaged, sec["teacher"])
        self.optimizer = self.make_optimizer()

    def teacher_network(self) -> MultiModalNet:
        return self.teacher.model["net"]

    def _student_parts(self) -> nn.ModuleDict:
        """The student modules the teacher averages (same names as the teacher's copy)."""
        return nn.ModuleDict({"net": self.network, "proj": self.proj})

    def update(self, batch: dict[str, Tensor], step: int) -> dict[str, float]:
        self.check_batch(batch)
        y = batch["label"]
        net = self.network
        z = net.encode(batch)
        terms = {"ce_fused": F.cross_entropy(net.fuse(z), y)}
        for m, logits in net.unimodal_logits(z).items():
            terms[f"ce_{m}"] = self.weights["unimodal"] * F.cross_entropy(logits, y)
        s = {m: F.normalize(self.proj[m](z[m]), dim=1) for m in self.modalities}
        views = torch.stack([s[m] for m in self.modalities], dim=1)  # (B, M, proj_dim)
        terms["supcon"] = self.weights["supcon"] * supcon_loss(views, y, self.temperature)
        if len(self.modalities) > 1:
            terms["mix"] = self.weights["mix"] * self.mix_loss(batch, s)
        out = self.step(terms, step)
        out["teacher/beta"] = self.teacher.update(self._student_parts())
        return out

    def mix_loss(self, batch: dict[str, Tensor], s: dict[str, Tensor]) -> Tensor:
        """Mean over ordered pairs (i, j) of scale_i · ||s_i − normalise(λ t_i + (1−λ) t_j)||², λ ≥ 0.5."""
        with torch.no_grad():
            tnet, tproj = self.teacher.model["net"], self.teacher.model["proj"]
            tz = tnet.encode(batch)
            t = {m: F.normalize(tproj[m](tz[m]), dim=1) for m in self.modalities}
        beta = torch.distributions.Beta(self.mix_alpha, self.mix_alpha)
        losses = []
        for i in self.modalities:
            for j in self.modalities:
                if i == j:
                    continue
                lam = beta.sample((s[i].shape[0], 1)).to(s[i].device)
                lam = torch.maximum(lam, 1.0 - lam)  # modality i dominates the mix
                target = F.normalize(lam * t[i] + (1.0 - lam) * t[j], dim=1)
                scale = self.audio_mix_scale if i == "audio" else 1.0
                losses.append(scale * ((s[i] - target) ** 2).sum(dim=1).mean())
        return torch.stack(losses).mean()


def _copy(module: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(module)
