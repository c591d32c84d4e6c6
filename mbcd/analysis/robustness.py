"""Robustness to one perturbed modality (the paper's Fig. 1b) and to a missing modality.

On the target test split, with the evaluated model:

* ``noise``: accuracy when Gaussian noise N(0, σ²) is added to one modality's normalised network input
  (the batch tensor the encoder sees), for each σ of ``noise_std`` (variance σ²) and each modality of
  ``modalities`` (empty: every modality of the set); the other modalities stay clean. σ = 0 adds nothing,
  so its accuracy is the clean one exactly. Only the perturbed modality's encoder re-runs.
* ``missing``: accuracy with one modality absent at test time — its LayerNorm-ed feature z_k set to zero
  before fusion through :meth:`MultiModalNet.fuse`'s masks (what a fused head sees when the stream is lost).

Noise is drawn on the CPU from a generator seeded by the run's identity, batch by batch in a fixed order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mbcd.analysis import common
from mbcd.analysis.common import Analysis
from mbcd.registries import ANALYSES
from mbcd.stages.evaluate import SelectedModel


@torch.no_grad()
def robustness_scores(sel: SelectedModel, stds: list[float], modalities: list[str], batch_size: int, seed: int,
                      split: str = "test") -> dict[str, Any]:  # fmt: skip
    """``{'clean': acc, 'noise': {k: {'std': [...], 'acc': [...]}}, 'missing': {k: acc}}`` on ``split``."""
    net = common.evaluated_net(sel)
    gen = torch.Generator().manual_seed(seed)
    hits = {"clean": 0, "noise": {m: [0] * len(stds) for m in modalities},
            "missing": {m: 0 for m in sel.setup.modalities}}  # fmt: skip
    for batch in common.iter_batches(sel, split, batch_size):
        y = batch["label"]
        with sel.precision.autocast(sel.device):
            z = net.encode(batch)
            hits["clean"] += common.correct(net.fuse(z), y)
            for m in sel.setup.modalities:
                hits["missing"][m] += common.correct(net.fuse(z, {m: torch.zeros(1, 1, device=sel.device)}), y)
            for m in modalities:
                for i, std in enumerate(stds):
                    if std == 0:
                        hits["noise"][m][i] += common.correct(net.fuse(z), y)
                        continue
                    noise = torch.randn(batch[m].shape, generator=gen).to(batch[m].device, batch[m].dtype)
                    z_m = net.normalize(m, net.trunk(m, net.stem(m, batch[m] + std * noise)))
                    hits["noise"][m][i] += common.correct(net.fuse({**z, m: z_m}), y)
    n = common.split_size(sel, split)
    return {
        "clean": hits["clean"] / n,
        "noise": {m: {"std": list(stds), "acc": [h / n for h in hs]} for m, hs in hits["noise"].items()},
        "missing": {m: h / n for m, h in hits["missing"].items()},
    }


@ANALYSES.register("robustness")
class Robustness(Analysis):
    """Accuracy under Gaussian noise on one modality's input, and with one modality missing."""

    name = "robustness"

    def measure(self, sel: SelectedModel, seed: int) -> dict[str, Any]:
        wanted = self.cfg.get("modalities") or list(sel.setup.modalities)
        mods = [m for m in sel.setup.modalities if m in wanted]
        stds = [float(s) for s in self.cfg.get("noise_std", [0.0, 0.5, 1.0, 2.0])]
        return robustness_scores(sel, stds, mods, self.batch_size, seed)

    def plot(self, result: dict[str, Any], path: Path) -> None:
        algs = common.algorithm_order(result)
        means = {a: result["algorithms"][a]["mean"] for a in algs}
        mods = list(dict.fromkeys(m for a in algs for m in means[a]["noise"]))
        fig, axes = common.figure(1, len(mods) + 1)
        for ax, m in zip(axes[0], mods, strict=False):
            for i, alg in enumerate(algs):
                if m in means[alg]["noise"]:
                    curve = means[alg]["noise"][m]
                    ax.plot(curve["std"], [100 * a for a in curve["acc"]], marker="o", color=f"C{i}", label=alg)
            ax.set(xlabel=f"noise std σ on the {m} input (variance σ²)", ylabel="target accuracy %",
                   title=f"Gaussian noise on {m} (mean over targets)")  # fmt: skip
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        ax = axes[0][-1]
        missing = list(dict.fromkeys(m for a in algs for m in means[a]["missing"]))
        labels = ["none", *missing]
        width = 0.8 / max(1, len(algs))
        for i, alg in enumerate(algs):
            vals = [means[alg]["clean"], *(means[alg]["missing"].get(m, np.nan) for m in missing)]
            ax.bar(np.arange(len(labels)) + (i - (len(algs) - 1) / 2) * width, [100 * v for v in vals], width,
                   color=f"C{i}", label=alg)  # fmt: skip
        ax.set_xticks(range(len(labels)), labels)
        ax.set(xlabel="modality missing at test time (z_k = 0)", ylabel="target accuracy %",
               title="missing modality (mean over targets)")  # fmt: skip
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3)
        common.save(fig, path)
