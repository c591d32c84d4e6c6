"""Embeddings (the paper's Fig. 6): a 2-D map of the fused features, coloured by class and by domain.

The evaluated model's fused feature (the concatenation of the LayerNorm-ed z_k, ``features(...)['fused']``)
of the source-validation and target-test clips (at most ``max_points``, a seeded sample) is projected to 2-D
by t-SNE (scikit-learn, ``random_state`` = the run's seed, ``perplexity``) or by PCA (``method: pca``).
Numbers to compare methods: the silhouette score of the fused features (Euclidean, in feature space, not on the
map) by class (higher: classes better separated) and by domain (lower: domains better mixed).
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

SPLITS = ("val", "test")  # source validation, target test


@torch.no_grad()
def fused_features(sel: SelectedModel, max_points: int, batch_size: int, seed: int) -> dict[str, np.ndarray]:
    """``{'x': (N, Σ d_k), 'label', 'domain', 'split'}`` over the source-val and target-test clips."""
    net = common.evaluated_net(sel)
    sizes = [common.split_size(sel, s) for s in SPLITS]
    keep = common.subset(sum(sizes), max_points, seed)
    parts: dict[str, list[np.ndarray]] = {"x": [], "label": [], "domain": [], "split": []}
    start = 0
    for split, n in zip(SPLITS, sizes, strict=True):
        idx = keep[(keep >= start) & (keep < start + n)] - start
        start += n
        for batch in common.iter_batches(sel, split, batch_size, idx) if len(idx) else ():
            with sel.precision.autocast(sel.device):
                parts["x"].append(net.features(batch)["fused"].float().cpu().numpy())
            parts["label"].append(batch["label"].cpu().numpy())
            parts["domain"].append(batch["domain"].cpu().numpy())
            parts["split"].append(np.full(len(batch["label"]), split))
    return {k: np.concatenate(v) for k, v in parts.items()}


def project(x: np.ndarray, method: str, perplexity: float, seed: int) -> np.ndarray:
    """(N, D) -> (N, 2) by t-SNE or PCA."""
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method != "tsne":
        raise ValueError(f"analysis.embeddings.method: {method!r} is not allowed; expected tsne or pca")
    from sklearn.manifold import TSNE

    perplexity = min(perplexity, max(1.0, (len(x) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def silhouette(x: np.ndarray, groups: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    k = len(np.unique(groups))
    return float(silhouette_score(x, groups)) if 1 < k < len(x) else float("nan")


@ANALYSES.register("embeddings")
class Embeddings(Analysis):
    """t-SNE / PCA of the fused features by class and by domain; silhouette scores."""

    name = "embeddings"
    per_target_only = ("points",)

    def measure(self, sel: SelectedModel, seed: int) -> dict[str, Any]:
        f = fused_features(sel, int(self.cfg.get("max_points", 1000)), self.batch_size, seed)
        method = self.cfg.get("method", "tsne")
        xy = project(f["x"], method, float(self.cfg.get("perplexity", 30.0)), seed)
        domains = sel.setup.domain_names
        return {
            "method": method, "n_points": len(xy), "classes": list(sel.setup.class_names),
            "silhouette_class": silhouette(f["x"], f["label"]), "silhouette_domain": silhouette(f["x"], f["domain"]),
            "points": {"x": xy[:, 0].round(4).tolist(), "y": xy[:, 1].round(4).tolist(),
                       "label": f["label"].tolist(), "domain": [domains[d] for d in f["domain"]],
                       "split": f["split"].tolist()},
        }  # fmt: skip

    def plot(self, result: dict[str, Any], path: Path) -> None:
        algs = common.algorithm_order(result)
        targets = sorted({t for a in algs for t in result["algorithms"][a]["targets"]})
        fig, axes = common.figure(len(algs), 2 * len(targets), width=3.2, height=3.0)
        for i, alg in enumerate(algs):
            for j, target in enumerate(targets):
                m = result["algorithms"][alg]["targets"].get(target)
                for k, key in enumerate(("label", "domain")):
                    ax = axes[i][2 * j + k]
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if m is None:
                        continue
                    pts = m["points"]
                    values = sorted(set(pts[key]), key=str)
                    for c, v in enumerate(values):
                        sel = [n for n, g in enumerate(pts[key]) if g == v]
                        ax.scatter([pts["x"][n] for n in sel], [pts["y"][n] for n in sel], s=6, color=f"C{c % 10}",
                                   label=m["classes"][v] if key == "label" else v)  # fmt: skip
                    score = m[f"silhouette_{'class' if key == 'label' else 'domain'}"]
                    what = "class" if key == "label" else "domain"
                    ax.set_title(f"{alg}, target {target}\nby {what} (silhouette {score:.2f})", fontsize=8)
                    if i == 0:
                        ax.legend(fontsize=5, markerscale=1.5, loc="best")
        common.save(fig, path)
