"""The collect stage on hand-written run directories: table numbers, averages and bad input."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from mbcd.experiments import all_runs
from mbcd.stages import collect

DOMAINS = ["studio", "street", "cartoon"]


def _study(params: dict[str, Any], tmp_path: Path) -> tuple[Path, Path, dict[tuple[str, int, str], float]]:
    params["experiments"].update(algorithms=["ERM", "MBCD"], seeds=[0, 1], modality_sets=["rgb+audio"])
    params["experiments"]["protocols"] = ["multi_source", "single_source"]
    params["tracking"]["enabled"] = False
    path = tmp_path / "params.yaml"
    import yaml

    path.write_text(yaml.safe_dump(params))
    runs_root = tmp_path / "runs"
    accs: dict[tuple[str, int, str], float] = {}
    for i, run in enumerate(all_runs(params)):
        run_dir = runs_root / run.path
        run_dir.mkdir(parents=True)
        result = {"evaluated": "teacher", "val_acc": 0.9, "test_acc": 0.5, "test_acc/rgb": 0.4, "test_acc/audio": 0.3}
        for j, d in enumerate(DOMAINS):
            acc = 0.30 + 0.01 * i + 0.1 * j
            result[f"test_acc/{d}"] = acc
            if run.experiment == f"ms_{d}":
                accs[(run.algorithm, run.seed, d)] = acc
        (run_dir / "result.json").write_text(json.dumps(result))
        lines = [{"epoch": e, "model": "teacher", "val_acc": 0.5 + e / 10, "test_acc": 0.4} for e in range(3)]
        (run_dir / "metrics.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\n")
    return path, runs_root, accs


def test_collect_writes_paper_tables(params: dict[str, Any], tmp_path: Path) -> None:
    path, runs_root, accs = _study(params, tmp_path)
    out = tmp_path / "results"
    assert collect.main(["--params", str(path), "--runs", str(runs_root), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    ms = metrics["synth"]["multi_source"]["rgb+audio"]
    for algo in ("ERM", "MBCD"):
        for d in DOMAINS:
            expected = statistics.fmean(100 * accs[(algo, s, d)] for s in (0, 1))
            assert ms[algo][d] == pytest.approx(expected, abs=1e-3)
        per_seed = [statistics.fmean(100 * accs[(algo, s, d)] for d in DOMAINS) for s in (0, 1)]
        assert ms[algo]["Avg"] == pytest.approx(statistics.fmean(per_seed), abs=1e-3)
    assert set(metrics["synth"]["single_source"]["rgb+audio"]["ERM"]) == {
        "studio->street", "studio->cartoon", "street->studio", "street->cartoon", "cartoon->studio", "cartoon->street", "Avg"
    }
    assert metrics["synth"]["in_domain"]["rgb+audio"]["MBCD"]["Avg"] == pytest.approx(90.0)
    table = (out / "table_synth_multi_source_rgb-audio.md").read_text()
    assert "| ERM |" in table and "±" in table and "V+A" in table
    assert (out / "curves.png").stat().st_size > 0 and (out / "modality_accuracy.png").stat().st_size > 0


def test_collect_names_a_missing_result(params: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, runs_root, _ = _study(params, tmp_path)
    victim = next(runs_root.rglob("result.json"))
    victim.unlink()
    assert collect.main(["--params", str(path), "--runs", str(runs_root), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert str(victim) in err and "not been evaluated" in err
    assert not (tmp_path / "r" / "metrics.json").exists()
