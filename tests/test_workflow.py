"""The orchestration: Snakemake lint/dry-run on the shipped params, the whole tiny study end to end, a rerun
that finds nothing to do, a killed-and-restarted study, MLflow's REST API over the finished study, and DVC
rerunning only what a params change touched. Real snakemake, dvc and mlflow processes in temporary copies."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
       "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"}
PROJECT_FILES = ["Snakefile", "workflow", "params.yaml", "configs", "dvc.yaml", "environment.yml"]


def _copy_project(repo_root: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = repo_root / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)
    return dest


def _run(cmd: list[str], cwd: Path, timeout: int = 1200) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def test_lint_and_dry_run_on_default_params(repo_root: Path, tmp_path: Path) -> None:
    wf = _copy_project(repo_root, tmp_path / "wf")
    lint = _run(["snakemake", "--lint"], wf)
    assert "Lints for" not in lint.stdout + lint.stderr
    dry = _run(["snakemake", "-n"], wf).stdout
    stats = dict(re.findall(r"^([a-z]+)\s+(\d+)$", dry, re.M))
    expected = {"generate": 1, "manifest": 1, "extract": 9, "split": 1, "train": 15, "evaluate": 15, "collect": 1}
    assert {k: int(v) for k, v in stats.items() if k in expected} == expected


@pytest.mark.parametrize(
    ("config", "domains"), [("epic_kitchens", ["D1", "D2", "D3"]), ("hac", ["human", "animal", "cartoon"])]
)
def test_real_dataset_configs_plan_the_papers_study(repo_root: Path, tmp_path: Path, config: str, domains: list) -> None:
    """The shipped EPIC/HAC params run the same rules: 3 domains x 3 modalities to extract; per modality set
    (4) three held-out targets (Table 1) and three single sources, each tested on the other two (Table 2):
    24 runs per algorithm, x 5 algorithms x 3 seeds."""
    wf = _copy_project(repo_root, tmp_path / "wf")
    dry = _run(["snakemake", "-n", "--config", f"params=configs/{config}.yaml"], wf).stdout
    stats = {k: int(v) for k, v in re.findall(r"^([a-z]+)\s+(\d+)$", dry, re.M)}
    assert stats.get("generate", 0) == 0 and stats["manifest"] == 1 and stats["extract"] == 9
    assert stats["train"] == stats["evaluate"] == 24 * 5 * 3
    for d in domains:
        assert f"data/cache/{config}/{d}/flow" in dry


def test_dvc_plans_every_stage_on_a_fresh_clone(repo_root: Path, tmp_path: Path) -> None:
    """`dvc repro --dry --force` lists every stage of dvc.yaml before any data exists (plain `--dry` trips over
    DVC's run-cache lookup hashing a dependency no stage has produced yet: treeverse/dvc#9021, #9818), and the
    committed dvc.lock names the same stages with the same commands."""
    from dvc.repo import Repo

    wf = _copy_project(repo_root, tmp_path / "dvc")
    shutil.copytree(repo_root / ".dvc", wf / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    shutil.copy2(repo_root / "dvc.lock", wf / "dvc.lock")
    _run(["git", "init", "-q"], wf)
    with Repo(str(wf)) as repo:
        stages = {s.name: s.cmd for s in repo.index.stages}
    out = _run(["dvc", "repro", "--dry", "--force"], wf).stdout
    planned = [line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")]
    assert sorted(planned) == sorted(stages) and len(planned) == 43
    assert planned[0] == "generate" and planned[-1] == "collect"
    assert not (wf / "data").exists()  # a dry run runs nothing
    lock = yaml.safe_load((wf / "dvc.lock").read_text())["stages"]
    assert {k: v["cmd"] for k, v in lock.items()} == stages


def test_bad_params_stop_snakemake_before_any_job(repo_root: Path, tmp_path: Path) -> None:
    wf = _copy_project(repo_root, tmp_path / "wf")
    params = yaml.safe_load((wf / "params.yaml").read_text())
    params["experiments"]["algorithms"].append("MBCDD")
    (wf / "bad.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run(["snakemake", "-n", "--config", "params=bad.yaml"], cwd=wf, env=ENV, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "experiments.algorithms[5]: unknown algorithm 'MBCDD'" in proc.stdout + proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _query_mlflow(db: Path, study: str) -> list[dict]:
    """Start `mlflow server` on 127.0.0.1, wait for /health, list the study's runs over REST, stop it by PID."""
    port = _free_port()
    server = subprocess.Popen(
        ["mlflow", "server", "--backend-store-uri", f"sqlite:///{db}", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("mlflow server did not answer /health within 120 s")
        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name={study}") as r:
            exp_id = json.load(r)["experiment"]["experiment_id"]
        req = urllib.request.Request(
            f"{base}/api/2.0/mlflow/runs/search", data=json.dumps({"experiment_ids": [exp_id], "max_results": 1000}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req) as r:
            return json.load(r)["runs"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def _tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


@pytest.mark.slow
def test_tiny_study_end_to_end_then_nothing_to_do(repo_root: Path, tmp_path: Path) -> None:
    wf = _copy_project(repo_root, tmp_path / "wf")
    _run(["snakemake", "--cores", "2", "--config", "params=configs/tiny.yaml"], wf, timeout=1800)
    metrics = json.loads((wf / "results" / "synth_tiny" / "metrics.json").read_text())
    table = metrics["synth"]["multi_source"]["rgb+flow+audio"]
    assert set(table) == {"ERM", "EMA", "SimMMDG", "CMRF", "MBCD"}
    assert all(set(row) == {"studio", "street", "cartoon", "Avg"} for row in table.values())
    assert all(0.0 <= v <= 100.0 for row in table.values() for v in row.values())
    again = _run(["snakemake", "--cores", "2", "-n", "--config", "params=configs/tiny.yaml"], wf)
    assert "Nothing to be done" in again.stdout + again.stderr

    runs = _query_mlflow(wf / "mlflow" / "mlflow.db", "synth_tiny")
    parents = [r for r in runs if "mbcd.parent_key" in _tags(r)]
    children = [r for r in runs if "mlflow.parentRunId" in _tags(r)]
    assert len(parents) == 5 and len(children) == 15
    assert all(r["info"]["status"] == "FINISHED" for r in runs)
    assert all(_tags(c)["mbcd.orchestrator"] == "snakemake" for c in children)
    assert all(any(m["key"] == "test_acc/avg" for m in p["data"]["metrics"]) for p in parents)
    for child in children:  # the run's files, mirrored as artifacts
        uri = child["info"]["artifact_uri"].removeprefix("file://")
        folder = Path(uri) if Path(uri).is_absolute() else wf / uri
        assert {"result.json", "metrics.jsonl", "confusion.png", "curves.png"} <= {p.name for p in folder.iterdir()}


@pytest.mark.slow
def test_killed_study_resumes_without_redoing_finished_jobs(repo_root: Path, tmp_path: Path) -> None:
    wf = _copy_project(repo_root, tmp_path / "wf")
    params = yaml.safe_load((wf / "configs" / "tiny.yaml").read_text())
    params["experiments"]["algorithms"] = ["ERM"]
    params["train"]["epochs"] = 4
    params["tracking"]["enabled"] = False
    (wf / "kill.yaml").write_text(yaml.safe_dump(params))
    cmd = ["snakemake", "--cores", "2", "--config", "params=kill.yaml"]
    proc = subprocess.Popen(cmd, cwd=wf, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 900
    # kill once one run is fully evaluated (so its training job is certainly finished) and others are pending
    while time.time() < deadline and not list(wf.glob("runs/**/result.json")):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(120)
    finished = {p: p.stat().st_mtime_ns for p in [*wf.glob("runs/**/train_done.json"), *wf.glob("runs/**/result.json")]}
    assert finished, "no training finished before the kill"
    _run(cmd, wf, timeout=1800)
    assert (wf / "results" / "synth_tiny" / "metrics.json").exists()
    assert {p: p.stat().st_mtime_ns for p in finished} == finished, "a finished job was redone"
    assert len(list(wf.glob("runs/**/result.json"))) == 3


@pytest.mark.slow
def test_dvc_repro_reruns_only_what_a_param_touched(repo_root: Path, tmp_path: Path) -> None:
    wf = _copy_project(repo_root, tmp_path / "dvc")
    shutil.copytree(repo_root / ".dvc", wf / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    params = yaml.safe_load((wf / "configs" / "tiny.yaml").read_text())
    params["experiments"]["algorithms"] = ["ERM", "MBCD"]
    params["tracking"]["enabled"] = False
    (wf / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "init", "-q"], wf)
    _run(["dvc", "repro"], wf, timeout=1800)
    assert json.loads((wf / "results" / "synth_tiny" / "metrics.json").read_text())
    params["algorithms"]["MBCD"]["teacher"]["decay"] = 0.99
    (wf / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run(["dvc", "repro"], wf, timeout=1800).stdout
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert ran == {f"{s}@{d}-rgb+flow+audio-MBCD-0" for s in ("train", "evaluate") for d in ("studio", "street", "cartoon")} | {"collect"}
