"""``mbcd evaluate``: apply the model-selection policy to a trained run and evaluate the selected model.

The policy (``eval.selection``) reads only the validation records of ``metrics.jsonl``; the model it picks
(``selected.pt``, or ``checkpoint.pt`` when that holds the picked epoch) is evaluated — the teacher when the
algorithm has one and ``eval.evaluate`` says so, else the student — on the target test manifest and on the
sources' validation split (in-domain accuracy). Writes ``RUN_DIR/result.json`` and ``RUN_DIR/confusion.png``.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mbcd.stages.common import StageError, parser, run_with_params


def build_parser():
    p = parser("evaluate", __doc__.splitlines()[0])
    p.add_argument("--run", required=True, type=Path, help="a trained run directory")
    p.add_argument("--splits", required=True, type=Path, help="folder with train.tsv, val.tsv, test.tsv")
    p.add_argument("--caches", required=True, type=Path, help="data/cache/<dataset>")
    return p


def _state_for_epoch(run_dir: Path, epoch: int) -> dict[str, Any]:
    """The model state of ``epoch`` from selected.pt or checkpoint.pt; StageError when neither holds it."""
    found = []
    for name in ("selected.pt", "checkpoint.pt"):
        path = run_dir / name
        if path.exists():
            state = torch.load(path, map_location="cpu", weights_only=False)
            if state["epoch"] == epoch:
                return state["model"]
            found.append(f"{name}: epoch {state['epoch']}")
    raise StageError(
        f"{run_dir}: the selection picks epoch {epoch} but no saved model holds it ({', '.join(found) or 'none'})"
    )


@dataclass
class SelectedModel:
    """A trained run's selected model, rebuilt and loaded: what evaluate scores and the analyses probe."""

    run: Any  # mbcd.experiments.Run
    run_dir: Path
    setup: Any  # mbcd.engine.loop.RunSetup (resolved params, split rows, classes, domains, derived seed)
    algorithm: Any  # mbcd.algorithms.Algorithm, in eval mode, on ``device``
    which: str  # 'teacher' or 'student': the evaluated model (``eval.evaluate``)
    epoch: int
    policy: str
    device: torch.device
    precision: Any  # mbcd.models.precision.Precision


def load_selected(params: dict[str, Any], run_dir: Path, splits: Path, caches: Path) -> SelectedModel:
    """Rebuild a trained run's algorithm and load the epoch the selection policy picks (validation only)."""
    from mbcd.algorithms import build_algorithm
    from mbcd.engine.loop import pick_device, prepare
    from mbcd.engine.selection import read_metrics, select_epoch
    from mbcd.experiments import Run
    from mbcd.models.precision import Precision

    if not (run_dir / "params.json").is_file() or not (run_dir / "metrics.jsonl").is_file():
        raise StageError(f"{run_dir}: not a trained run directory (params.json and metrics.jsonl expected)")
    resolved = json.loads((run_dir / "params.json").read_text())
    ident = resolved["run"]
    run = Run(ident["dataset"], ident["experiment"], ident["modalities"], ident["algorithm"], ident["seed"])
    run_params = {k: v for k, v in resolved.items() if k not in ("run", "algorithm")}
    setup = prepare(run_params, run, splits, caches, run_dir)
    device = pick_device(params["train"].get("device", "auto"))
    alg = build_algorithm(run.algorithm, setup.modalities, setup.num_classes, run_params)
    which = params["eval"]["evaluate"] if getattr(alg, "has_teacher", False) else "student"
    policy = params["eval"]["selection"]
    epoch = select_epoch(policy, read_metrics(run_dir / "metrics.jsonl"), which)
    alg.load_state_dict(_state_for_epoch(run_dir, epoch))
    precision = Precision.from_params(run_params["train"])
    precision.prepare(alg.to(device))
    alg.eval()
    return SelectedModel(run, run_dir, setup, alg, which, epoch, policy, device, precision)


def evaluate_run(params: dict[str, Any], run_dir: Path, splits: Path, caches: Path) -> dict[str, Any]:
    """Select, load, evaluate; returns the result.json content (also written, with confusion.png)."""
    from mbcd import tracking
    from mbcd.engine.data import BatchLoader, ClipSet
    from mbcd.engine.evaluation import evaluate, plot_confusion
    from mbcd.plots import run_curves

    sel = load_selected(params, run_dir, splits, caches)
    setup, alg, which, epoch, run = sel.setup, sel.algorithm, sel.which, sel.epoch, sel.run
    bs = params["eval"].get("batch_size", 64)
    scores = {}
    for split in ("val", "test"):
        loader = BatchLoader(ClipSet(setup.splits[split], caches, setup.modalities, setup.domain_names), bs, False)
        scores[split] = evaluate(
            alg, loader, which, setup.num_classes, setup.domain_names, sel.device, sel.precision, student_heads=True
        )
    result: dict[str, Any] = {"selection": sel.policy, "selected_epoch": epoch, "evaluated": which}
    if scores["test"].per_modality:  # which model's uni-modal heads gave val_acc/<m>, test_acc/<m>
        result["modality_heads"] = which if len(alg.model_for(which).heads) else "student"
    result.update(scores["val"].flat("val_acc"))
    result["in_domain_acc"] = scores["val"].acc
    result.update(scores["test"].flat("test_acc"))
    result["confusion"] = {"classes": setup.class_names, "matrix": scores["test"].confusion.tolist()}
    (run_dir / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    title = f"{run.identity}\n{which}, epoch {epoch}: target accuracy {scores['test'].acc:.3f}"
    plot_confusion(scores["test"].confusion, setup.class_names, run_dir / "confusion.png", title)
    run_curves(run_dir / "metrics.jsonl", run_dir / "curves.png", run.identity)
    with tracking.open_run(params, run, run_dir, os.environ.get("MBCD_ORCHESTRATOR", "cli")) as tr:
        tr.log_metrics({f"result/{k}": v for k, v in result.items() if isinstance(v, float)}, step=epoch)
        for name in ("result.json", "metrics.jsonl", "confusion.png", "curves.png"):
            tr.log_artifact(run_dir / name)
        if params["tracking"].get("log_checkpoint", False):  # opt-in: the selected model's weights (large)
            tr.log_artifact(run_dir / "selected.pt", "checkpoint")
    return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_with_params(args, lambda params, a: evaluate_run(params, a.run, a.splits, a.caches), args.run)


if __name__ == "__main__":
    sys.exit(main())
