"""Losses shared by the baselines: supervised contrastive (Khosla et al., 2020) across modality views."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def supcon_loss(views: Tensor, labels: Tensor, temperature: float = 0.1) -> Tensor:
    """Supervised contrastive loss over ``views`` (N, V, D) (V views per sample, e.g. one per modality).

    Every one of the N·V embeddings (L2-normalised here) is an anchor; its positives are the other embeddings
    with the same label; loss_i = −mean_{p∈P(i)} log(exp(s_ip/τ) / Σ_{a≠i} exp(s_ia/τ)), averaged over the
    anchors that have at least one positive.
    """
    n, v, _ = views.shape
    feats = F.normalize(views, dim=2).transpose(0, 1).reshape(n * v, -1)  # (V·N, D), view-major
    lab = labels.repeat(v)  # (V·N,)
    sim = feats @ feats.T / temperature  # (V·N, V·N)
    self_mask = torch.eye(n * v, dtype=torch.bool, device=views.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (lab[:, None] == lab[None, :]) & ~self_mask
    n_pos = pos.sum(dim=1)
    has = n_pos > 0
    if not bool(has.any()):
        return views.sum() * 0.0
    mean_log = log_prob.masked_fill(~pos, 0.0).sum(dim=1)[has] / n_pos[has]
    return -mean_log.mean()
