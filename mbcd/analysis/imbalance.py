"""Modality imbalance (the paper's Fig. 1a and Fig. 4): how well each modality's branch does on its own.

For every run, per modality k of its set, on the target test split:

* ``probe``: a multinomial logistic regression (scikit-learn, L2, ``probe.C``) fitted on the frozen,
  LayerNorm-ed branch features z_k of the source-train split (``max_clips`` of them at most), scored on the
  target — comparable across algorithms whether or not they have uni-modal heads;
* ``head``: the accuracy of the evaluated model's own uni-modal head φ_k, where it has one; ``head_student``:
  the student's head, where the evaluated model is a fused-only teacher (MBCD, CMRF).

The uni-modal runs (each modality trained alone, algorithm ``Unimodal``) give the same two numbers, so a branch
inside a jointly trained model is compared with the modality trained alone. Runs whose ``metrics.jsonl``
records MBCD's adaptive dropout also give per-epoch curves of each modality's confidence s_k and drop
probability p_k (``amd/s/<k>``, ``amd/p/<k>``), showing which modality leads early.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mbcd.analysis import common
from mbcd.analysis.common import Analysis
from mbcd.registries import ANALYSES
from mbcd.stages.evaluate import SelectedModel


@torch.no_grad()
def branch_features(sel: SelectedModel, split: str, batch_size: int, idx: np.ndarray | None = None,
                    heads: bool = True) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]], np.ndarray]:  # fmt: skip
    """({k: z_k (N, d_k)}, {"head"|"head_student": {k: predictions (N,)}} (when ``heads``), labels (N,)).

    ``head``: the evaluated model's uni-modal heads; ``head_student``: the student's, when the evaluated model
    is a teacher (a fused-only averaged copy) and the student has heads (MBCD, CMRF)."""
    net = common.evaluated_net(sel)
    feats: dict[str, list[np.ndarray]] = {m: [] for m in sel.setup.modalities}
    which = {"head": sel.which, "head_student": "student"} if sel.which != "student" else {"head": "student"}
    which = which if heads else {}
    preds: dict[str, dict[str, list[np.ndarray]]] = {key: {} for key in which}
    labels = []
    for batch in common.iter_batches(sel, split, batch_size, idx):
        with sel.precision.autocast(sel.device):
            outs = {key: sel.algorithm.predict_modalities(batch, w) for key, w in which.items()}
            z = net.encode(batch)
        for m in sel.setup.modalities:
            feats[m].append(z[m].float().cpu().numpy())
            for key, out in outs.items():
                if m in out:
                    preds[key].setdefault(m, []).append(out[m].float().argmax(1).cpu().numpy())
        labels.append(batch["label"].cpu().numpy())
    heads = {key: {m: np.concatenate(p) for m, p in ps.items()} for key, ps in preds.items()}
    return {m: np.concatenate(f) for m, f in feats.items()}, heads, np.concatenate(labels)


def probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                   c: float = 1.0, max_iter: int = 500, seed: int = 0) -> float:  # fmt: skip
    """Accuracy on (test_x, test_y) of a multinomial logistic regression fitted on (train_x, train_y)."""
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(train_y)) < 2:
        return float((test_y == train_y[0]).mean())
    clf = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    clf.fit(train_x, train_y)
    return float((clf.predict(test_x) == test_y).mean())


def amd_curves(run_dir: Path, which: str, modalities: tuple[str, ...]) -> dict[str, Any] | None:
    """Per-epoch ``{'epoch', 's': {k: [...]}, 'p': {k: [...]}}`` from metrics.jsonl, or None without AMD."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rows = sorted((r for r in rows if r.get("model") == which), key=lambda r: r["epoch"])
    if not rows or not all(f"amd/s/{m}" in rows[0] for m in modalities):
        return None
    curves: dict[str, Any] = {"epoch": [r["epoch"] for r in rows]}
    for key in ("s", "p"):
        curves[key] = {m: [float(r.get(f"amd/{key}/{m}", float("nan"))) for r in rows] for m in modalities}
    return curves


@ANALYSES.register("imbalance")
class Imbalance(Analysis):
    """Per-modality accuracy alone vs inside each jointly trained model; MBCD's s_k / p_k curves."""

    name = "imbalance"
    needs_unimodal = True

    def measure(self, sel: SelectedModel, seed: int) -> dict[str, Any]:
        idx = common.subset(common.split_size(sel, "train"), int(self.cfg.get("max_clips", 0)), seed)
        train_z, _, train_y = branch_features(sel, "train", self.batch_size, idx, heads=False)
        test_z, heads, test_y = branch_features(sel, "test", self.batch_size)
        probe = self.cfg.get("probe", {})
        out: dict[str, Any] = {"modalities": {}}
        for m in sel.setup.modalities:
            acc = probe_accuracy(train_z[m], train_y, test_z[m], test_y, float(probe.get("C", 1.0)),
                                 int(probe.get("max_iter", 500)), seed)  # fmt: skip
            out["modalities"][m] = {"probe": acc}
            for key, pred in heads.items():
                if m in pred:
                    out["modalities"][m][key] = float((pred[m] == test_y).mean())
        curves = amd_curves(sel.run_dir, sel.which, sel.setup.modalities)
        if curves is not None:
            out["curves"] = curves
        return out

    def plot(self, result: dict[str, Any], path: Path) -> None:
        algs = common.algorithm_order(result)
        with_curves = [a for a in algs if "curves" in result["algorithms"][a]["mean"]]
        fig, axes = common.figure(1, 1 + 2 * len(with_curves), width=4.6)
        ax = axes[0][0]
        mods = [m for m in ("rgb", "flow", "audio") if any(m in result["algorithms"][a]["mean"]["modalities"]
                                                           for a in algs)]  # fmt: skip
        width = 0.8 / max(1, len(algs))
        for i, alg in enumerate(algs):
            acc = result["algorithms"][alg]["mean"]["modalities"]
            xs = np.arange(len(mods)) + (i - (len(algs) - 1) / 2) * width
            label = "alone (Unimodal)" if alg == common.UNIMODAL else alg
            ax.bar(xs, [100 * acc.get(m, {}).get("probe", np.nan) for m in mods], width, label=label, color=f"C{i}")
            for key, marker, label in (("head", "_", "uni-modal head"), ("head_student", "x", "student's head")):
                heads = [100 * acc.get(m, {}).get(key, np.nan) for m in mods]
                ax.scatter(xs, heads, marker=marker, s=120, color="k", zorder=3, label=label if i == 0 else None)
        ax.set_xticks(range(len(mods)), mods)
        ax.set(ylabel="target accuracy % (bars: linear probe)", title="per-modality accuracy, mean over targets")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=4)
        for j, alg in enumerate(with_curves):
            curves = result["algorithms"][alg]["mean"]["curves"]
            for k, (key, label) in enumerate((("s", "confidence s_k"), ("p", "drop probability p_k"))):
                ax = axes[0][1 + 2 * j + k]
                for m, ys in curves[key].items():
                    ax.plot(curves["epoch"][: len(ys)], ys, marker="o", label=m)
                ax.xaxis.get_major_locator().set_params(integer=True)
                ax.set(xlabel="epoch", ylabel=label, title=f"{alg}: {label}\n(mean over targets)")
                ax.legend(fontsize=7)
                ax.grid(alpha=0.3)
        common.save(fig, path)
