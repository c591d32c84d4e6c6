"""What every analysis shares: the interface, batches of a split, accuracy, the per-run seed, aggregation.

An analysis is a registered :class:`Analysis` subclass (``@ANALYSES.register("name")``). The stage
(``mbcd analyse``) loads each trained run's selected model exactly as ``mbcd evaluate`` does
(:func:`mbcd.stages.evaluate.load_selected`), calls :meth:`Analysis.measure` on it, and :func:`aggregate`
groups the measurements per algorithm and target domain (mean over seeds; modality sets of the uni-modal
runs merged), then averages them over the targets; :meth:`Analysis.plot` draws the methods compared.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from mbcd.config import deep_merge
from mbcd.engine.data import ClipSet
from mbcd.engine.evaluation import to_device
from mbcd.experiments import Run, derive_seed
from mbcd.models.fusion import MultiModalNet
from mbcd.stages.evaluate import SelectedModel

UNIMODAL = "Unimodal"


class Analysis:
    """One analysis of the paper (method.md §9): ``measure`` one run, ``plot`` the aggregated result.

    ``cfg`` is the analysis' block of ``params.analysis``; ``batch_size`` the evaluation batch size.
    ``needs_unimodal``: the stage also loads the uni-modal runs of each modality of the set.
    ``per_target_only``: keys of a measurement reported per target (first seed) but not averaged.
    """

    name: ClassVar[str] = ""
    needs_unimodal: ClassVar[bool] = False
    per_target_only: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: dict[str, Any], batch_size: int = 64) -> None:
        self.cfg = cfg
        self.batch_size = batch_size

    def measure(self, sel: SelectedModel, seed: int) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def plot(self, result: dict[str, Any], path: Path) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def evaluated_net(sel: SelectedModel) -> MultiModalNet:
    """The network the evaluate stage scores: the teacher's averaged copy or the student."""
    return sel.algorithm.model_for(sel.which)


def analysis_seed(name: str, run: Run) -> int:
    """Seed of one analysis of one run, derived from the run's identity (house rule 10)."""
    return derive_seed("analysis", name, run.dataset, run.experiment, run.algorithm, run.modalities, run.seed)


def subset(n: int, max_clips: int, seed: int) -> np.ndarray:
    """All positions ``0..n-1``, or a seeded sorted sample of ``max_clips`` of them (``max_clips`` > 0)."""
    if max_clips <= 0 or n <= max_clips:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_clips, replace=False))


def iter_batches(sel: SelectedModel, split: str, batch_size: int, idx: np.ndarray | None = None
                 ) -> Iterator[dict[str, torch.Tensor]]:  # fmt: skip
    """Batches of a split (``train``/``val``/``test``) in manifest order, no augmentation, on the device."""
    s = sel.setup
    clips = ClipSet(s.splits[split], s.caches, s.modalities, s.domain_names)
    idx = np.arange(len(clips)) if idx is None else idx
    for lo in range(0, len(idx), batch_size):
        yield to_device(clips.batch(idx[lo : lo + batch_size]), sel.device, sel.precision)


def split_size(sel: SelectedModel, split: str) -> int:
    return len(sel.setup.splits[split].clip_ids)


def correct(logits: torch.Tensor, labels: torch.Tensor) -> int:
    return int((logits.float().argmax(1) == labels).sum())


# ---------------------------------------------------------------------------------------------- aggregation
def mean_tree(trees: list[Any]) -> Any:
    """Element-wise mean of equally shaped JSON trees: dicts by their common keys, numbers, lists of numbers.

    NaN values are left out of a mean (a mean of NaNs only is NaN); equal values are kept as they are;
    anything else (strings, lists of strings) is taken from the first.
    """
    first = trees[0]
    if isinstance(first, dict):
        keys = [k for k in first if all(isinstance(t, dict) and k in t for t in trees)]
        return {k: mean_tree([t[k] for t in trees]) for k in keys}
    if isinstance(first, bool) or not isinstance(first, int | float | list):
        return first
    if isinstance(first, list):
        if not first or not all(isinstance(t, list) for t in trees) or isinstance(first[0], dict | list | str):
            return first
        n = min(len(t) for t in trees)
        return [mean_tree([t[i] for t in trees]) for i in range(n)]
    if all(type(t) is type(first) and t == first for t in trees):
        return first  # equal values (epoch numbers, counts) keep their type
    values = [float(t) for t in trees if isinstance(t, int | float) and not math.isnan(float(t))]
    return sum(values) / len(values) if values else float("nan")


def aggregate(analysis: Analysis, measured: list[tuple[Run, list[str], dict[str, Any]]]) -> dict[str, Any]:
    """``{algorithm: {targets: {target: m}, mean: m, runs: [identity]}}`` from (run, targets, measurement)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    runs: dict[str, list[str]] = defaultdict(list)
    for run, targets, m in measured:
        for target in targets:
            groups[(run.algorithm, target, run.modalities)].append(m)
        runs[run.algorithm].append(run.identity)
    per_target: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for (alg, target, _), ms in groups.items():  # seeds averaged (per-target-only keys: the first seed's)
        merged = {**mean_tree(ms), **{k: ms[0][k] for k in analysis.per_target_only if k in ms[0]}}
        per_target[alg][target] = deep_merge(per_target[alg].get(target, {}), merged)  # modality sets merged
    out: dict[str, Any] = {}
    for alg, targets in per_target.items():
        trimmed = [{k: v for k, v in t.items() if k not in analysis.per_target_only} for t in targets.values()]
        out[alg] = {"targets": dict(targets), "mean": mean_tree(trimmed), "runs": sorted(runs[alg])}
    return out


def write_json(data: dict[str, Any], path: Path) -> None:
    """JSON with NaN written as null (strict JSON), atomically enough for one writer."""

    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        if isinstance(x, float) and not math.isfinite(x):
            return None
        return x

    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(clean(data), indent=1) + "\n")
    tmp.replace(path)


def figure(rows: int, cols: int, width: float = 4.2, height: float = 3.4) -> tuple[Any, Any]:
    """A matplotlib (Agg) figure with a 2-D array of axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)


def save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def algorithm_order(result: dict[str, Any]) -> list[str]:
    """Algorithms in the order the study lists them (as stored), uni-modal baseline first."""
    names = list(result["algorithms"])
    return sorted(names, key=lambda a: (a != UNIMODAL, names.index(a)))
