"""Accuracy of a trained algorithm on one split: overall, per domain, per modality, and its confusion matrix.

The fused prediction (``predict_modalities(...)['fused']``) gives the headline accuracy; every uni-modal head
the algorithm has gives ``acc/<modality>`` (the imbalance diagnostics read these). Evaluation runs in eval
mode under ``torch.no_grad`` and restores the module's training flag afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mbcd.engine.data import BatchLoader
from mbcd.models.precision import Precision


@dataclass
class SplitScores:
    """What one evaluation of one model on one split found."""

    acc: float
    per_domain: dict[str, float]
    per_modality: dict[str, float]
    confusion: np.ndarray  # (C, C): rows = true class, columns = predicted class
    n: int
    extra: dict[str, float] = field(default_factory=dict)

    def flat(self, prefix: str) -> dict[str, float]:
        """``{prefix: acc, prefix/<domain>: ..., prefix/<modality>: ...}`` as in metrics.jsonl."""
        out = {prefix: self.acc}
        out.update({f"{prefix}/{k}": v for k, v in self.per_domain.items()})
        out.update({f"{prefix}/{k}": v for k, v in self.per_modality.items()})
        return out


def to_device(
    batch: dict[str, torch.Tensor], device: torch.device, precision: Precision | None = None
) -> dict[str, torch.Tensor]:
    """Move a batch to ``device``; float inputs take the model's memory format (``train.channels_last``)."""
    out = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    if precision is not None:
        out = {k: precision.input(v) if v.is_floating_point() else v for k, v in out.items()}
    return out


def _accuracy(pred: np.ndarray, label: np.ndarray) -> float:
    return float((pred == label).mean()) if len(label) else float("nan")


@torch.no_grad()
def evaluate(
    algorithm: torch.nn.Module,
    loader: BatchLoader,
    which: str,
    num_classes: int,
    domain_names: list[str],
    device: torch.device,
    precision: Precision | None = None,
    student_heads: bool = False,
) -> SplitScores:
    """Evaluate ``which`` ('student'/'teacher') on every clip of ``loader`` (bf16 autocast when ``train.amp``).

    The teacher averages encoders and the fused head only; with ``student_heads`` the per-modality accuracies of
    a teacher evaluation come from the student's uni-modal heads at the same checkpoint (one more forward)."""
    precision = precision or Precision()
    was_training = algorithm.training
    algorithm.eval()
    preds: dict[str, list[np.ndarray]] = {}
    labels, domains = [], []
    try:
        for batch in loader.epoch():
            batch = to_device(batch, device, precision)
            with precision.autocast(device):
                out = algorithm.predict_modalities(batch, which=which)
                if student_heads and len(out) == 1 and len(algorithm.model_for("student").heads):
                    out.update(
                        {k: v for k, v in algorithm.predict_modalities(batch, "student").items() if k != "fused"}
                    )
            for key, logits in out.items():
                preds.setdefault(key, []).append(logits.float().argmax(1).cpu().numpy())
            labels.append(batch["label"].cpu().numpy())
            domains.append(batch["domain"].cpu().numpy())
    finally:
        algorithm.train(was_training)
    y, d = np.concatenate(labels), np.concatenate(domains)
    fused = np.concatenate(preds.pop("fused"))
    per_domain = {name: _accuracy(fused[d == i], y[d == i]) for i, name in enumerate(domain_names) if (d == i).any()}
    per_mod = {m: _accuracy(np.concatenate(p), y) for m, p in preds.items()}
    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(conf, (y, fused), 1)
    return SplitScores(_accuracy(fused, y), per_domain, per_mod, conf, len(y))


def plot_confusion(confusion: np.ndarray, class_names: list[str], path: str | Path, title: str) -> None:
    """Row-normalised confusion matrix as a PNG (matplotlib Agg; no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = confusion.sum(1, keepdims=True)
    norm = np.divide(confusion, rows, out=np.zeros(confusion.shape, dtype=float), where=rows > 0)
    size = max(4.0, 0.6 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    for (i, j), v in np.ndenumerate(confusion):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
