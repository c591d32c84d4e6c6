"""Flatness (the paper's Fig. 3, SWAD's protocol): loss increase under random weight perturbations.

Around the evaluated model θ, for each radius r of ``radii`` and each of ``directions`` random directions d,
the cross-entropy of the fused prediction on (at most ``max_clips``) source-train clips is measured at θ + d;
reported is the mean and standard deviation over directions of L(θ + d) − L(θ). A direction is Gaussian in
every parameter tensor the fused prediction uses and that trains (encoders, LayerNorms if affine, the fused
head; not the uni-modal heads, not a frozen stem), rescaled so that its global L2 norm over all of them is r
(not filter-normalised). BatchNorm and dropout are in eval mode, so the loss is a deterministic function of
the weights and r = 0 (evaluated once: every direction is then the zero vector) gives L(θ) exactly. Optionally (``hessian.enabled``) the top Hessian eigenvalue of the
same loss by power iteration with Hessian-vector products.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mbcd.analysis import common
from mbcd.analysis.common import Analysis
from mbcd.registries import ANALYSES
from mbcd.stages.evaluate import SelectedModel


def perturbed_parameters(sel: SelectedModel) -> list[torch.nn.Parameter]:
    """The evaluated network's parameters the fused prediction uses and the student trains."""
    trains = {n for n, p in sel.algorithm.network.named_parameters() if p.requires_grad}
    net = common.evaluated_net(sel)
    return [p for n, p in net.named_parameters() if n in trains and not n.startswith("heads.")]


def fused_loss(sel: SelectedModel, batches: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """Mean cross-entropy of the fused logits over all clips of ``batches`` (graph kept when grads are on)."""
    net = common.evaluated_net(sel)
    total = torch.zeros((), device=sel.device)
    n = sum(len(b["label"]) for b in batches)
    for batch in batches:
        with sel.precision.autocast(sel.device):
            logits = net.fuse(net.encode(batch))
        total = total + F.cross_entropy(logits.float(), batch["label"], reduction="sum")
    return total / n


@torch.no_grad()
def loss_increase(sel: SelectedModel, batches: list[dict[str, torch.Tensor]], radii: list[float], directions: int,
                  seed: int) -> dict[str, Any]:  # fmt: skip
    """``{'loss', 'radius', 'increase_mean', 'increase_std', 'param_norm', ...}``; weights restored after."""
    params = perturbed_parameters(sel)
    saved = [p.detach().clone() for p in params]
    base = float(fused_loss(sel, batches))
    gen = torch.Generator().manual_seed(seed)
    means, stds, losses = [], [], []
    try:
        for r in radii:
            deltas = []
            for _ in range(directions if r > 0 else 1):  # r = 0: every direction gives θ itself
                d = [torch.randn(p.shape, generator=gen) for p in params]
                scale = r / float(torch.sqrt(sum((x.double() ** 2).sum() for x in d)))
                for p, x, p0 in zip(params, d, saved, strict=True):
                    p.copy_(p0 + (scale * x).to(p.device, p.dtype))
                deltas.append(float(fused_loss(sel, batches)) - base)
            for p, p0 in zip(params, saved, strict=True):
                p.copy_(p0)
            means.append(float(np.mean(deltas)))
            stds.append(float(np.std(deltas)))
            losses.append(base + means[-1])
    finally:
        for p, p0 in zip(params, saved, strict=True):
            p.copy_(p0)
    norm = float(torch.sqrt(sum((p.double() ** 2).sum() for p in saved)))
    return {"loss": base, "radius": list(radii), "loss_mean": losses, "increase_mean": means, "increase_std": stds,
            "param_norm": norm, "n_params": sum(p.numel() for p in params), "directions": directions}  # fmt: skip


def hessian_top_eigenvalue(sel: SelectedModel, batches: list[dict[str, torch.Tensor]], iters: int, seed: int) -> float:
    """Largest-magnitude Hessian eigenvalue of the fused loss by power iteration on Hessian-vector products."""
    params = perturbed_parameters(sel)
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen).to(p.device) for p in params]
    eig = 0.0
    try:
        for _ in range(iters):
            norm = torch.sqrt(sum((x**2).sum() for x in v))
            v = [x / norm for x in v]
            grads = torch.autograd.grad(fused_loss(sel, batches), params, create_graph=True)
            hv = torch.autograd.grad(sum((g * x).sum() for g, x in zip(grads, v, strict=True)), params)
            eig = float(sum((h * x).sum() for h, x in zip(hv, v, strict=True)))
            v = [h.detach() for h in hv]
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
    return eig


@ANALYSES.register("flatness")
class Flatness(Analysis):
    """Loss increase under random weight perturbations of growing radius (mean and spread over directions)."""

    name = "flatness"

    def measure(self, sel: SelectedModel, seed: int) -> dict[str, Any]:
        idx = common.subset(common.split_size(sel, "train"), int(self.cfg.get("max_clips", 256)), seed)
        batches = list(common.iter_batches(sel, "train", self.batch_size, idx))
        radii = [float(r) for r in self.cfg.get("radii", [0.0, 0.5, 1.0, 2.0])]
        out = loss_increase(sel, batches, radii, int(self.cfg.get("directions", 5)), seed)
        out["n_clips"] = len(idx)
        hessian = self.cfg.get("hessian", {})
        if hessian.get("enabled", False):
            out["hessian_top"] = hessian_top_eigenvalue(sel, batches, int(hessian.get("iters", 20)), seed)
        return out

    def plot(self, result: dict[str, Any], path: Path) -> None:
        algs = common.algorithm_order(result)
        fig, axes = common.figure(1, 1, width=5.5, height=4.0)
        ax = axes[0][0]
        for i, alg in enumerate(algs):
            m = result["algorithms"][alg]["mean"]
            mean, std = np.asarray(m["increase_mean"]), np.asarray(m["increase_std"])
            ax.plot(m["radius"], mean, marker="o", color=f"C{i}", label=f"{alg} (L(θ) = {m['loss']:.3f})")
            ax.fill_between(m["radius"], mean - std, mean + std, color=f"C{i}", alpha=0.15)
        ax.set(xlabel="perturbation radius ‖d‖₂", ylabel="loss increase L(θ+d) − L(θ) (source train)",
               title="flatness: mean ± std over directions\n(mean over targets)")  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        common.save(fig, path)
