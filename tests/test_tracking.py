"""The MLflow sink: parent/child layout, resume, failure status, and two writers at once on sqlite."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any

import pytest

from mbcd import tracking
from mbcd.experiments import Run


def _params(params: dict[str, Any], tmp: Path) -> dict[str, Any]:
    params["study"] = "tracking_test"
    params["tracking"] = {"enabled": True, "uri": f"sqlite:///{tmp}/mlflow.db", "artifact_root": str(tmp / "art")}
    return params


def _train(params: dict[str, Any], experiment: str, run_dir: str, epochs: int) -> None:
    run = Run("synth", experiment, "rgb+audio", "MBCD", 0)
    with tracking.open_run(params, run, run_dir, orchestrator="test") as tr:
        tr.log_params({"train": {"epochs": epochs}, "algorithm": "MBCD"})
        for epoch in range(epochs):
            tr.log_metrics({"val_acc": epoch / epochs, "loss/total": 1.0 / (epoch + 1)}, step=epoch)
        (Path(run_dir) / "metrics.jsonl").write_text('{"epoch": 0}\n')
        tr.log_artifact(Path(run_dir) / "metrics.jsonl")


def test_two_trainings_log_at_once(params: dict[str, Any], tmp_path: Path) -> None:
    params = _params(params, tmp_path)
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_train, args=(params, exp, str(tmp_path / exp), 25)) for exp in ("ms_studio", "ms_street")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    assert [p.exitcode for p in procs] == [0, 0]
    runs = tracking.find_runs(params["tracking"]["uri"], "tracking_test")
    parents = [r for r in runs if "mbcd.parent_key" in r["tags"]]
    children = [r for r in runs if "mlflow.parentRunId" in r["tags"]]
    assert len(parents) == 1, "both children must share one parent run"
    assert sorted(c["name"] for c in children) == ["ms_street", "ms_studio"]
    assert all(c["tags"]["mlflow.parentRunId"] == parents[0]["run_id"] for c in children)
    assert all(c["status"] == "FINISHED" and c["metrics"]["val_acc"] == pytest.approx(24 / 25) for c in children)
    assert all(c["tags"]["mbcd.orchestrator"] == "test" for c in children)


def test_failure_marks_run_failed_and_resume_reuses_it(params: dict[str, Any], tmp_path: Path) -> None:
    params = _params(params, tmp_path)
    run = Run("synth", "ms_cartoon", "rgb", "ERM", 1)
    with pytest.raises(RuntimeError, match="boom"):
        with tracking.open_run(params, run, tmp_path / "r") as tr:
            tr.log_metrics({"loss/total": 2.0}, step=0)
            raise RuntimeError("boom")
    (child,) = [r for r in tracking.find_runs(params["tracking"]["uri"], "tracking_test") if r["name"] == "ms_cartoon"]
    assert child["status"] == "FAILED"
    with tracking.open_run(params, run, tmp_path / "r") as tr:  # resume: same MLflow run
        tr.log_metrics({"loss/total": 1.0}, step=1)
    (again,) = [r for r in tracking.find_runs(params["tracking"]["uri"], "tracking_test") if r["name"] == "ms_cartoon"]
    assert again["run_id"] == child["run_id"] and again["status"] == "FINISHED"
    assert again["metrics"]["loss/total"] == 1.0


def test_disabled_tracking_touches_nothing(params: dict[str, Any], tmp_path: Path) -> None:
    params["tracking"] = {"enabled": False, "uri": f"sqlite:///{tmp_path}/never.db"}
    with tracking.open_run(params, Run("synth", "ms_a", "rgb", "ERM", 0), tmp_path / "r") as tr:
        tr.log_metrics({"x": 1.0}, step=0)
    assert not (tmp_path / "never.db").exists() and not (tmp_path / "r").exists()


def test_parent_summary_and_flatten(params: dict[str, Any], tmp_path: Path) -> None:
    params = _params(params, tmp_path)
    _train(params, "ms_studio", str(tmp_path / "a"), 2)
    key = tracking.parent_key(Run("synth", "ms_studio", "rgb+audio", "MBCD", 0))
    tracking.log_parent_summaries(params, {key: {"test_acc/mean": 0.5}})
    (parent,) = [r for r in tracking.find_runs(params["tracking"]["uri"], "tracking_test") if "mbcd.parent_key" in r["tags"]]
    assert parent["metrics"]["test_acc/mean"] == 0.5
    assert tracking.flatten({"a": {"b": 1, "c": [1, 2]}}) == {"a.b": "1", "a.c": "[1, 2]"}
