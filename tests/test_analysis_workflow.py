"""``snakemake analysis`` on the tiny study in a temporary copy: every enabled analysis writes its JSON and PNG
for every algorithm (training the Unimodal runs the imbalance analysis needs), and MLflow holds the artifacts
on every involved run; ``rule all`` stays free of analyses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_workflow import _copy_project, _run

STUDY = "synth_tiny"


@pytest.mark.slow
def test_tiny_study_analysis_target(repo_root: Path, tmp_path: Path) -> None:
    from mbcd import tracking

    wf = _copy_project(repo_root, tmp_path / "wf")
    params = yaml.safe_load((wf / "configs" / "tiny.yaml").read_text())
    enabled = params["analysis"]["enabled"]
    assert sorted(enabled) == ["embeddings", "flatness", "imbalance", "robustness"]
    dry = _run(["snakemake", "-n", "--config", "params=configs/tiny.yaml"], wf).stdout
    assert "analyse" not in dry, "rule all does not run the analyses"
    _run(["snakemake", "--cores", "2", "analysis", "--config", "params=configs/tiny.yaml"], wf, timeout=2400)
    algorithms = set(params["experiments"]["algorithms"])
    for name in enabled:
        out = wf / "results" / STUDY / "analysis" / name / "synth" / "rgb+flow+audio"
        result = json.loads((out / f"{name}.json").read_text())
        assert (out / f"{name}.png").stat().st_size > 10_000
        want = algorithms | ({"Unimodal"} if name == "imbalance" else set())
        assert set(result["algorithms"]) == want
        assert all(set(e["targets"]) == {"studio", "street", "cartoon"} for e in result["algorithms"].values())
    assert len(list(wf.glob("runs/synth/*/*/Unimodal/seed0/result.json"))) == 9
    uri = f"sqlite:///{wf / 'mlflow' / 'mlflow.db'}"
    children = [r for r in tracking.find_runs(uri, STUDY) if "mlflow.parentRunId" in r["tags"]]
    assert len(children) == 15 + 9
    for child in children:
        names = {p for name in enabled for p in tracking.list_artifacts(uri, child["run_id"], f"analysis/{name}")}
        expected = enabled if child["tags"]["mbcd.algorithm"] != "Unimodal" else ["imbalance"]
        assert names == {f"analysis/{n}/{n}.{ext}" for n in expected for ext in ("json", "png")}
    again = _run(["snakemake", "--cores", "2", "-n", "analysis", "--config", "params=configs/tiny.yaml"], wf)
    assert "Nothing to be done" in again.stdout + again.stderr
