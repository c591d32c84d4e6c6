"""Model-selection policies: best source-validation epoch (ties -> later), last; never the target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mbcd.engine.selection import SELECTION, read_metrics, select_epoch


def _recs(vals: list[float], tests: list[float], model: str = "teacher") -> list[dict]:
    return [
        {"epoch": e + 1, "step": 10 * (e + 1), "model": model, "val_acc": v, "test_acc": t, "test_acc/cartoon": t}
        for e, (v, t) in enumerate(zip(vals, tests, strict=True))
    ]


def test_registered_policies() -> None:
    assert SELECTION.names() == ["best_val", "last"]


def test_best_val_picks_highest_validation_and_later_on_ties() -> None:
    recs = _recs([0.5, 0.8, 0.7, 0.8, 0.6], [0.9, 0.1, 0.2, 0.3, 0.95])
    assert select_epoch("best_val", recs, "teacher") == 4
    assert select_epoch("last", recs, "teacher") == 5


def test_policy_never_reads_the_target() -> None:
    recs = _recs([0.5, 0.8, 0.7], [0.1, 0.2, 0.3])
    flipped = [{**r, "test_acc": 1.0 - r["test_acc"], "test_acc/cartoon": 0.0} for r in recs]
    assert select_epoch("best_val", recs, "teacher") == select_epoch("best_val", flipped, "teacher") == 2
    seen: list[dict] = []
    SELECTION._items["_spy"] = lambda rs: seen.extend(rs) or 1  # a policy that records what it is given
    try:
        select_epoch("_spy", recs, "teacher")
    finally:
        del SELECTION._items["_spy"]
    assert seen and all(set(r) == {"epoch", "model", "val_acc"} for r in seen)


def test_only_the_requested_model_counts() -> None:
    recs = _recs([0.5, 0.9], [0, 0], "student") + _recs([0.7, 0.6], [0, 0], "teacher")
    assert select_epoch("best_val", recs, "student") == 2
    assert select_epoch("best_val", recs, "teacher") == 1
    with pytest.raises(ValueError, match="no metrics records for model 'ghost'"):
        select_epoch("best_val", recs, "ghost")
    with pytest.raises(KeyError, match="unknown selection policy 'oracle'"):
        select_epoch("oracle", recs, "teacher")


def test_read_metrics_names_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps(_recs([0.5], [0.5])[0]) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl: line 2: not JSON"):
        read_metrics(path)
    path.write_text('{"epoch": 1, "model": "student"}\n')
    with pytest.raises(ValueError, match=r"line 1: missing key 'val_acc'"):
        read_metrics(path)
