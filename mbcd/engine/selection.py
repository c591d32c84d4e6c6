"""Model-selection policies (DomainBed's ``model_selection``): which epoch's model a run reports.

A policy sees only the validation view of ``metrics.jsonl`` — ``epoch``, ``model`` and ``val_acc`` — so it
cannot peek at the target: :func:`select_epoch` strips every other key before calling it. Policies register
by name in :data:`SELECTION` (``params.yaml`` ``eval.selection``).

Policies are prefix-consistent (the epoch picked from the first e epochs is e or the epoch picked from the
first e-1), so the training loop can write ``selected.pt`` as it goes, and the final pick equals the policy
applied to the complete file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mbcd.registry import Registry

SELECTION = Registry("selection policy")
ValRecord = dict[str, Any]  # {"epoch": int, "model": str, "val_acc": float}
VALIDATION_KEYS = ("epoch", "model", "val_acc")


@SELECTION.register("best_val")
def best_val(records: list[ValRecord]) -> int:
    """Epoch of the highest source-validation accuracy; ties go to the later epoch."""
    best = max(records, key=lambda r: (r["val_acc"], r["epoch"]))
    return int(best["epoch"])


@SELECTION.register("last")
def last(records: list[ValRecord]) -> int:
    """The final epoch."""
    return max(int(r["epoch"]) for r in records)


def validation_view(records: list[dict[str, Any]], model: str) -> list[ValRecord]:
    """Only ``epoch``/``model``/``val_acc`` of ``model``'s records: what a policy is allowed to see."""
    return [{k: r[k] for k in VALIDATION_KEYS} for r in records if r.get("model") == model]


def select_epoch(policy: str, records: list[dict[str, Any]], model: str) -> int:
    """Apply the named policy to ``model``'s validation records; ValueError when there are none."""
    fn: Callable[[list[ValRecord]], int] = SELECTION.get(policy)
    view = validation_view(records, model)
    if not view:
        raise ValueError(f"no metrics records for model {model!r}; cannot apply selection {policy!r}")
    return fn(view)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl``; a bad line raises ValueError naming the file and line."""
    out = []
    with open(path) as fh:
        for i, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: line {i}: not JSON ({err})") from None
            for key in VALIDATION_KEYS:
                if key not in rec:
                    raise ValueError(f"{path}: line {i}: missing key {key!r}")
            out.append(rec)
    return out
