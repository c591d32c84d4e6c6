"""Collaborative distillation loss (method.md §4, Eq. 8).

L_dis = w_mm · KL(p_T ‖ p_mm) + w_um · Σ_k KL(p_T ‖ p_k): the teacher's fused prediction (all modalities, no
dropout, eval mode) supervises the student's fused head and every uni-modal head. KL(teacher ‖ student) is
summed over classes and averaged over the batch; both distributions use the temperature τ (softmax(·/τ)),
without the τ² gradient rescaling (τ = 1 by default, where the two conventions agree).
"""

from __future__ import annotations

import torch
from torch import Tensor


def kl_teacher_student(teacher_logits: Tensor, student_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """KL(p_T ‖ p_S) = mean_i Σ_c p_T,ic (log p_T,ic − log p_S,ic), with p = softmax(logits / τ)."""
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(
            f"distillation: teacher logits {tuple(teacher_logits.shape)} vs student {tuple(student_logits.shape)}"
        )
    log_pt = torch.log_softmax(teacher_logits.detach() / temperature, dim=1)
    log_ps = torch.log_softmax(student_logits / temperature, dim=1)
    return (log_pt.exp() * (log_pt - log_ps)).sum(dim=1).mean()


def distillation_terms(
    teacher_logits: Tensor,
    fused_logits: Tensor,
    unimodal_logits: dict[str, Tensor],
    temperature: float = 1.0,
    weight_fused: float = 1.0,
    weight_unimodal: float = 1.0,
) -> dict[str, Tensor]:
    """Weighted loss terms ``{'kd_fused': ..., 'kd_<modality>': ...}`` (their sum is λ·L_dis of Eq. 9)."""
    terms = {"kd_fused": weight_fused * kl_teacher_student(teacher_logits, fused_logits, temperature)}
    for m, logits in unimodal_logits.items():
        terms[f"kd_{m}"] = weight_unimodal * kl_teacher_student(teacher_logits, logits, temperature)
    return terms
