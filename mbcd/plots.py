"""Result plots (matplotlib, Agg): training curves and per-modality accuracy bars."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mbcd.experiments import Run  # noqa: E402
from mbcd.modality import MODALITIES  # noqa: E402


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{i}: not valid JSON ({err})") from None
    return rows


def curves(runs: list[Run], runs_root: Path, evaluated: dict[Run, str], out: Path) -> Path:
    """Validation and target accuracy per epoch of the evaluated model, one panel per experiment."""
    by_exp: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_exp[f"{run.dataset}/{run.experiment}/{run.modalities}"].append(run)
    fig, axes = plt.subplots(1, len(by_exp), figsize=(4.5 * len(by_exp), 3.4), squeeze=False)
    for ax, (title, exp_runs) in zip(axes[0], sorted(by_exp.items()), strict=True):
        for i, run in enumerate(sorted(exp_runs, key=lambda r: (r.algorithm, r.seed))):
            rows = [r for r in read_jsonl(runs_root / run.path / "metrics.jsonl") if r["model"] == evaluated[run]]
            epochs = [r["epoch"] for r in rows]
            color = f"C{i % 10}"
            ax.plot(epochs, [100 * r["val_acc"] for r in rows], "--", color=color)
            ax.plot(epochs, [100 * r["test_acc"] for r in rows], "-", color=color, label=f"{run.algorithm} s{run.seed}")
        ax.set(title=title, xlabel="epoch", ylabel="accuracy % (dashed: val, solid: target)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_curves(metrics: Path, out: Path, title: str) -> Path:
    """One run's per-epoch curves from its metrics.jsonl: accuracy of each logged model (student/teacher; dashed:
    source validation, solid: target) and every loss term."""
    rows = read_jsonl(metrics)
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(9, 3.4))
    for i, model in enumerate(dict.fromkeys(r["model"] for r in rows)):
        mine = [r for r in rows if r["model"] == model]
        epochs = [r["epoch"] for r in mine]
        acc_ax.plot(epochs, [100 * r["val_acc"] for r in mine], "--", color=f"C{i}")
        acc_ax.plot(epochs, [100 * r["test_acc"] for r in mine], "-", color=f"C{i}", label=model)
    acc_ax.set(title=title, xlabel="epoch", ylabel="accuracy % (dashed: val, solid: target)")
    first = [r for r in rows if r["model"] == rows[0]["model"]] if rows else []
    for key in sorted({k for r in first for k in r if k.startswith("loss/")}):
        loss_ax.plot([r["epoch"] for r in first], [r.get(key, float("nan")) for r in first], label=key[5:])
    loss_ax.set(title="loss terms (epoch means)", xlabel="epoch")
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def modality_bars(results: dict[Run, dict[str, Any]], out: Path) -> Path:
    """Target accuracy of the fused prediction and of each uni-modal head, per algorithm (mean over runs)."""
    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run, res in results.items():
        acc[run.algorithm]["fused"].append(100 * res["test_acc"])
        for m in MODALITIES:
            if f"test_acc/{m}" in res:
                acc[run.algorithm][m].append(100 * res[f"test_acc/{m}"])
    algos = list(acc)
    keys = ["fused", *[m for m in MODALITIES if any(m in acc[a] for a in algos)]]
    fig, ax = plt.subplots(figsize=(1.2 + 1.3 * len(algos), 3.4))
    width = 0.8 / len(keys)
    for j, key in enumerate(keys):
        vals = [sum(acc[a][key]) / len(acc[a][key]) if acc[a][key] else 0.0 for a in algos]
        ax.bar([i + j * width for i in range(len(algos))], vals, width, label=key)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(algos))], algos, rotation=20)
    ax.set(ylabel="target accuracy %", title="fused vs uni-modal heads")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = out / "modality_accuracy.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
