"""MBCD: Modality-Balanced Collaborative Distillation (Wang et al., AAAI-26; method.md §2–§6).

One step composes the components (each its own module in ``components/``):

    L = L_ce(⊕_k θ'_k, φ_mm; x ⊙ D) + Σ_k L_ce(θ_k, φ_k; x^k) + λ·L_dis                         (Eq. 9)

* pass 1 per modality: stem (cached) → [DSU] → trunk θ_k → LayerNorm → z_k → φ_k → uni-modal logits;
* AMD (Eqs. 2–4): confidences s_k of the uni-modal logits → r_k → p_k → keep masks D_k;
* GCC (Eqs. 5–6): θ'_k = θ_k − α ∇_{θ_k} L_uni,k; pass 2 re-runs the trainable stage at θ'_k;
* teacher (Eq. 7): weight average of encoders + LayerNorms + fused head, updated after the optimiser step;
* distillation (Eq. 8): KL(p_T ‖ p_mm) + Σ_k KL(p_T ‖ p_k) from the teacher's fused prediction.

Every component is switchable from the ``MBCD`` params section (``amd.mode: none``, ``gcc.order: 0``,
``teacher.enabled: false``, ``distill.enabled: false``, ``dsu.enabled``), so the ablations are configs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mbcd.algorithms.base import Algorithm
from mbcd.algorithms.components.amd import AdaptiveModalityDropout
from mbcd.algorithms.components.distill import distillation_terms
from mbcd.algorithms.components.dsu import dsu_perturb
from mbcd.algorithms.components.gcc import GradientConsistency
from mbcd.algorithms.components.teacher import WeightAveragedTeacher
from mbcd.registries import ALGORITHMS


@ALGORITHMS.register("MBCD")
class MBCD(Algorithm):
    """MBCD with adaptive modality dropout, gradient-consistency look-ahead and a distilling averaged teacher."""

    has_teacher = True

    def __init__(self, modalities: tuple[str, ...], num_classes: int, hparams: dict[str, Any]) -> None:
        super().__init__(modalities, num_classes, hparams)
        sec = self.section
        self.amd = AdaptiveModalityDropout(sec["amd"])
        self.gcc = GradientConsistency(sec["gcc"])
        self.distill = dict(sec["distill"])
        dsu = sec.get("dsu", {}) or {}
        self.dsu_p = float(dsu.get("p", 0.5)) if dsu.get("enabled", False) else 0.0
        self.network = self.build_network(unimodal_heads=True)
        self.has_teacher = bool(sec["teacher"].get("enabled", True))
        if self.has_teacher:
            self.teacher = WeightAveragedTeacher.from_params(self.network.fused_copy(), sec["teacher"])
        elif self.distill["enabled"]:
            raise ValueError("MBCD: distill.enabled needs the teacher (teacher.enabled is false)")
        self.optimizer = self.make_optimizer()

    def update(self, batch: dict[str, Tensor], step: int) -> dict[str, float]:
        """One step of Eq. 9; returns the loss terms, the AMD diagnostics and the teacher's β."""
        self.check_batch(batch)
        y = batch["label"]
        stems, z, logits = self.first_pass(batch)
        terms = {f"ce_{m}": F.cross_entropy(logits[m], y) for m in self.modalities}  # Σ_k L_ce(θ_k, φ_k)
        masks, diagnostics = self.amd(logits)  # Eqs. 2–4
        fused = self.lookahead_fused(batch, stems, z, terms, masks)  # Eq. 5
        terms["ce_fused"] = F.cross_entropy(fused, y)
        if self.distill["enabled"]:  # Eq. 8
            terms.update(self.distillation(batch, fused, logits))
        out = self.step(terms, step)  # Eq. 9: backward + optimiser step
        if self.has_teacher:
            out["teacher/beta"] = self.teacher.update(self.network)  # Eq. 7
        return {**out, **diagnostics}

    def first_pass(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
        """Stem outputs (unperturbed, cached for the look-ahead), features z_k and uni-modal logits."""
        net = self.network
        stems: dict[str, Tensor] = {}
        z: dict[str, Tensor] = {}
        for m in self.modalities:
            stems[m] = net.stem(m, batch[m])
            h = dsu_perturb(stems[m], self.dsu_p) if self.dsu_p > 0 and self.training else stems[m]
            z[m] = net.normalize(m, net.trunk(m, h))
        return stems, z, net.unimodal_logits(z)

    def lookahead_fused(
        self,
        batch: dict[str, Tensor],
        stems: dict[str, Tensor],
        z: dict[str, Tensor],
        terms: dict[str, Tensor],
        masks: dict[str, Tensor] | None,
    ) -> Tensor:
        """Fused logits φ_mm(⊕_k D_k·LN(θ'_k(x^k))); with GCC off, θ' = θ and pass 1's features are reused."""
        net = self.network
        if not self.gcc.enabled:
            return net.fuse(z, masks)
        params = {(m, n): p for m in self.modalities for n, p in net.encoders[m].named_parameters() if p.requires_grad}
        uni_loss = torch.stack([terms[f"ce_{m}"] for m in self.modalities]).sum()
        shifted = self.gcc(uni_loss, params)  # θ'_k = θ_k − α g_k
        z2 = {}
        for m in self.modalities:
            theta = {n: t for (k, n), t in shifted.items() if k == m}
            z2[m] = net.normalize(m, net.encode_at(m, batch[m], stems[m], theta))
        return net.fuse(z2, masks)

    def distillation(self, batch: dict[str, Tensor], fused: Tensor, logits: dict[str, Tensor]) -> dict[str, Tensor]:
        """Teacher forward (eval mode, all modalities, no dropout, no grad), then the weighted KL terms."""
        with torch.no_grad():
            teacher_net = self.teacher.model
            teacher_logits = teacher_net.fuse(teacher_net.encode(batch))
        d = self.distill
        return distillation_terms(
            teacher_logits,
            fused,
            logits,
            temperature=float(d.get("temperature", 1.0)),
            weight_fused=float(d.get("weight_fused", 1.0)),
            weight_unimodal=float(d.get("weight_unimodal", 1.0)),
        )
