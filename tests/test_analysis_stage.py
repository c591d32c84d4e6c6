"""``mbcd analyse`` end to end on a tiny trained study (three leave-one-domain-out experiments, ERM, MBCD and
the uni-modal runs, one epoch each): every analysis writes its JSON and PNG with the documented keys, the
embeddings hold one point per clip, MLflow receives the artifacts, and bad input fails naming the file/key.

Also home of the helpers the other ``test_analysis_*`` files import (``trained_study``, ``selected_model``).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from test_engine_data import DOMAINS, make_tiny_study, tiny_params, write_split

from mbcd.engine.loop import prepare
from mbcd.experiments import Run
from mbcd.stages import analyse as analyse_stage
from mbcd.stages import evaluate as evaluate_stage
from mbcd.stages import train as train_stage
from mbcd.stages.evaluate import SelectedModel

torch.set_num_threads(1)
MODS = "rgb+audio"
ANALYSES = ("imbalance", "robustness", "flatness", "embeddings")
ANALYSIS_PARAMS = {
    "enabled": list(ANALYSES),
    "imbalance": {"max_clips": 0, "probe": {"C": 1.0, "max_iter": 100}},
    "robustness": {"noise_std": [0.0, 1.0], "modalities": []},
    "flatness": {"radii": [0.0, 1.0], "directions": 2, "max_clips": 8, "hessian": {"enabled": True, "iters": 2}},
    "embeddings": {"method": "tsne", "perplexity": 5.0, "max_points": 0},
}


def analysis_params(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Tiny training params (1 epoch, ERM and MBCD) with the analyses enabled at test size."""
    p = tiny_params(base, epochs=1)
    p["experiments"].update(algorithms=["ERM", "MBCD"], modality_sets=[MODS], seeds=[0])
    p["analysis"] = copy.deepcopy(ANALYSIS_PARAMS)
    p.update(changes)
    return p


def make_loo_splits(caches: Path, splits: Path) -> Path:
    """Splits of every leave-one-domain-out experiment over the tiny study's clips (make_tiny_study's layout)."""
    root = splits.parent
    rows = {d: [(f"{d}_{i:03d}", d, i % 3) for i in range(12)] for d in DOMAINS}
    for target in DOMAINS:
        exp = root / f"ms_{target}"
        sources = [r for d in DOMAINS if d != target for r in rows[d]]
        write_split(exp / "train.tsv", [r for i, r in enumerate(sources) if i % 3 != 2])
        write_split(exp / "val.tsv", [r for i, r in enumerate(sources) if i % 3 == 2])
        write_split(exp / "test.tsv", rows[target])
    return root


def train_and_evaluate(pfile: Path, run: Run, caches: Path, splits_root: Path, runs_root: Path) -> Path:
    out = runs_root / run.path
    split = str(splits_root / run.experiment)
    args = ["--params", str(pfile), "--dataset", run.dataset, "--experiment", run.experiment, "--algorithm",
            run.algorithm, "--modalities", run.modalities, "--seed", str(run.seed), "--splits", split,
            "--caches", str(caches), "--out", str(out)]  # fmt: skip
    assert train_stage.main(args) == 0
    assert (
        evaluate_stage.main(["--params", str(pfile), "--run", str(out), "--splits", split, "--caches", str(caches)])
        == 0
    )
    return out


@pytest.fixture(scope="module")
def trained_study(tmp_path_factory: pytest.TempPathFactory, _default_params: dict[str, Any]) -> dict[str, Any]:
    """Trained, evaluated runs of every experiment (ERM, MBCD on rgb+audio; Unimodal rgb and audio)."""
    root = tmp_path_factory.mktemp("analysis")
    caches, splits = make_tiny_study(root, ("rgb", "audio"))
    splits_root = make_loo_splits(caches, splits)
    params = analysis_params(_default_params)
    params["tracking"].update(enabled=True, uri=f"sqlite:///{root}/mlflow/mlflow.db", artifact_root=str(root / "art"))
    pfile, untracked = root / "params.yaml", root / "untracked.yaml"
    pfile.write_text(yaml.safe_dump(params))
    untracked.write_text(yaml.safe_dump({**params, "tracking": {**params["tracking"], "enabled": False}}))
    runs_root = root / "runs"
    for target in DOMAINS:  # MLflow (slow to write) for the ms_cartoon runs only
        for alg, mods in [("ERM", MODS), ("MBCD", MODS), ("Unimodal", "rgb"), ("Unimodal", "audio")]:
            run = Run("synth", f"ms_{target}", mods, alg, 0)
            train_and_evaluate(pfile if target == "cartoon" else untracked, run, caches, splits_root, runs_root)
    return {"root": root, "params": params, "pfile": pfile, "caches": caches, "splits": splits_root, "runs": runs_root}


def selected_model(params: dict[str, Any], study: tuple[Path, Path], algorithm: str, mods: str = MODS) -> SelectedModel:
    """An untrained algorithm on the tiny study's ms_cartoon splits, wrapped as the evaluate stage's model."""
    from mbcd.algorithms import build_algorithm
    from mbcd.models.precision import Precision

    caches, splits = study
    run = Run("synth", "ms_cartoon", mods, algorithm, 0)
    setup = prepare(params, run, splits, caches, splits / "run")
    torch.manual_seed(0)
    alg = build_algorithm(algorithm, setup.modalities, setup.num_classes, params).eval()
    which = "teacher" if alg.has_teacher else "student"
    return SelectedModel(run, splits / "run", setup, alg, which, 1, "best_val", torch.device("cpu"), Precision())


def _args(s: dict[str, Any], name: str, out: Path, pfile: Path | None = None) -> list[str]:
    return ["--params", str(pfile or s["pfile"]), "--analysis", name, "--dataset", "synth", "--modalities", MODS,
            "--runs", str(s["runs"]), "--caches", str(s["caches"]), "--splits", str(s["splits"]), "--out", str(out)]  # fmt: skip


@pytest.mark.parametrize("name", ANALYSES)
def test_each_analysis_writes_json_and_png_for_every_algorithm_and_logs_to_mlflow(
    trained_study: dict[str, Any], name: str
) -> None:
    from mbcd import tracking

    s = trained_study
    out = s["root"] / "results" / name
    assert analyse_stage.main(_args(s, name, out)) == 0
    result = json.loads((out / f"{name}.json").read_text())
    assert (out / f"{name}.png").stat().st_size > 10_000
    want = {"ERM", "MBCD"} | ({"Unimodal"} if name == "imbalance" else set())
    assert set(result["algorithms"]) == want
    for alg in want:
        entry = result["algorithms"][alg]
        assert set(entry["targets"]) == set(DOMAINS) and "mean" in entry
    erm, mbcd = result["algorithms"]["ERM"], result["algorithms"]["MBCD"]
    if name == "imbalance":
        assert set(result["algorithms"]["Unimodal"]["mean"]["modalities"]) == {"rgb", "audio"}
        assert set(erm["mean"]["modalities"]["rgb"]) == {"probe"}  # ERM has no uni-modal head
        assert set(result["algorithms"]["Unimodal"]["mean"]["modalities"]["rgb"]) == {"probe", "head"}
        assert set(mbcd["mean"]["modalities"]["audio"]) == {"probe", "head_student"}  # the teacher has no heads
        assert set(mbcd["mean"]["curves"]["p"]) == {"rgb", "audio"} and "curves" not in erm["mean"]
    if name == "robustness":
        for entry in (erm, mbcd):
            for target in entry["targets"].values():
                assert all(curve["acc"][0] == target["clean"] for curve in target["noise"].values())
    if name == "flatness":
        assert erm["mean"]["increase_mean"][0] == 0.0 and erm["mean"]["radius"] == [0.0, 1.0]
        assert all(v is not None for v in (erm["mean"]["hessian_top"], mbcd["mean"]["hessian_top"]))
    if name == "embeddings":  # one point per source-val (8) and target-test (12) clip; not averaged over targets
        pts = erm["targets"]["cartoon"]["points"]
        assert erm["targets"]["cartoon"]["n_points"] == len(pts["x"]) == len(pts["label"]) == 8 + 12
        assert pts["split"].count("test") == 12 and set(pts["domain"]) == set(DOMAINS)
        assert "points" not in erm["mean"] and "silhouette_class" in erm["mean"]
    client_runs = tracking.find_runs(s["params"]["tracking"]["uri"], s["params"]["study"])
    children = [r for r in client_runs if "mlflow.parentRunId" in r["tags"] and r["tags"]["mbcd.algorithm"] in want]
    assert len(children) == len(want) + (1 if name == "imbalance" else 0)  # Unimodal: one run per modality
    for child in children:
        names = set(tracking.list_artifacts(s["params"]["tracking"]["uri"], child["run_id"], f"analysis/{name}"))
        assert names == {f"analysis/{name}/{name}.json", f"analysis/{name}/{name}.png"}


def test_analysis_is_deterministic(trained_study: dict[str, Any]) -> None:
    s = trained_study
    outs = [s["root"] / "again" / str(i) for i in (0, 1)]
    for out in outs:
        assert analyse_stage.main(_args(s, "robustness", out)) == 0
    assert (outs[0] / "robustness.json").read_text() == (outs[1] / "robustness.json").read_text()


def test_bad_input_fails_naming_the_file_or_key(trained_study: dict[str, Any], tmp_path: Path, capsys) -> None:
    s = trained_study
    out = tmp_path / "out"
    assert analyse_stage.main(_args(s, "landscape", out)) == 1
    assert "--analysis: unknown analysis 'landscape'; registered: embeddings, flatness, imbalance, robustness" in (
        capsys.readouterr().err
    )
    params = copy.deepcopy(s["params"])
    params["analysis"]["enabled"] = ["robustness"]
    pfile = tmp_path / "p.yaml"
    pfile.write_text(yaml.safe_dump(params))
    assert analyse_stage.main(_args(s, "flatness", out, pfile)) == 1
    assert f"{pfile}: analysis.enabled does not include 'flatness'" in capsys.readouterr().err
    params["analysis"]["enabled"] = ["flatness"]
    del params["analysis"]["flatness"]
    pfile.write_text(yaml.safe_dump(params))
    assert analyse_stage.main(_args(s, "flatness", out, pfile)) == 1
    assert f"{pfile}: analysis.flatness (the analysis' settings) is missing" in capsys.readouterr().err
    args = _args(s, "robustness", out)
    args[args.index("--dataset") + 1] = "hac"
    assert analyse_stage.main(args) == 1
    assert "--dataset: 'hac' has no block in params datasets" in capsys.readouterr().err
    # a run directory without its evaluated result
    runs = tmp_path / "runs"
    shutil.copytree(s["runs"], runs)
    missing = runs / "synth" / "ms_street" / MODS / "MBCD" / "seed0" / "result.json"
    missing.unlink()
    args = _args(s, "robustness", out)
    args[args.index("--runs") + 1] = str(runs)
    assert analyse_stage.main(args) == 1
    assert f"{missing}: not found; train and evaluate synth/ms_street/{MODS}/MBCD/0 first" in capsys.readouterr().err
    # a missing cache
    caches = tmp_path / "caches"
    shutil.copytree(s["caches"], caches)
    shutil.rmtree(caches / "street" / "audio")
    args = _args(s, "robustness", out)
    args[args.index("--caches") + 1] = str(caches)
    assert analyse_stage.main(args) == 1
    assert f"{caches / 'street' / 'audio'}: no extraction cache" in capsys.readouterr().err
    assert not out.exists(), "nothing is written when the input is bad"


def test_tracking_disabled_logs_nothing(trained_study: dict[str, Any], tmp_path: Path) -> None:
    from mbcd import tracking

    params = copy.deepcopy(trained_study["params"])
    params["tracking"]["enabled"] = False
    run_dir = trained_study["runs"] / "synth" / "ms_cartoon" / MODS / "ERM" / "seed0"
    assert tracking.log_to_run(params, run_dir, [run_dir / "result.json"], "analysis/x") is False
    assert tracking.log_to_run(trained_study["params"], tmp_path, [run_dir / "result.json"], "analysis/x") is False
