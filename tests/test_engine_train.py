"""``mbcd train`` / ``mbcd evaluate`` end to end on tiny caches: files and keys, resume, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from test_engine_data import DOMAINS, make_tiny_study, tiny_params

from mbcd.engine.loop import NonFiniteLoss, run_training
from mbcd.experiments import Run, derive_seed
from mbcd.stages import evaluate as evaluate_stage
from mbcd.stages import train as train_stage
from mbcd.stages.common import StageError

torch.set_num_threads(1)
MODS = "rgb+flow+audio"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tiny_study(tmp_path_factory.mktemp("study"))


def _write_params(p: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(p))
    return path


def _train_args(pfile: Path, alg: str, mods: str, study: tuple[Path, Path], out: Path) -> list[str]:
    caches, splits = study
    return ["--params", str(pfile), "--dataset", "synth", "--experiment", "ms_cartoon", "--algorithm", alg,
            "--modalities", mods, "--seed", "0", "--splits", str(splits), "--caches", str(caches), "--out", str(out)]  # fmt: skip


@pytest.mark.parametrize("alg,mods", [("ERM", "rgb+audio"), ("MBCD", MODS)])
def test_train_and_evaluate_write_the_documented_run_directory(
    params: dict[str, Any], study: tuple[Path, Path], tmp_path: Path, alg: str, mods: str
) -> None:
    p = tiny_params(params, epochs=2)
    if alg == "MBCD":  # tracking on, with the opt-in checkpoint artifact
        p["tracking"].update(enabled=True, uri=f"sqlite:///{tmp_path}/mlflow.db", log_checkpoint=True,
                             artifact_root=str(tmp_path / "artifacts"))  # fmt: skip
    pfile = _write_params(p, tmp_path / "params.yaml")
    out = tmp_path / "run"
    assert train_stage.main(_train_args(pfile, alg, mods, study, out)) == 0
    assert {p.name for p in out.iterdir()} >= {
        "params.json",
        "metrics.jsonl",
        "checkpoint.pt",
        "selected.pt",
        "train.log",
    }
    resolved = json.loads((out / "params.json").read_text())
    assert resolved["run"]["derived_seed"] == derive_seed("synth", "ms_cartoon", alg, mods, 0)
    assert resolved["run"]["targets"] == ["cartoon"] and resolved["run"]["num_classes"] == 3
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    models = ["student", "teacher"] if alg == "MBCD" else ["student"]
    assert [(r["epoch"], r["model"]) for r in recs] == [(e, m) for e in (1, 2) for m in models]
    for r in recs:
        assert r["step"] == 2 * r["epoch"]  # 16 train clips, batch 8
        assert 0 <= r["val_acc"] <= 1 and 0 <= r["test_acc"] <= 1 and "test_acc/cartoon" in r
        assert {"val_acc/studio", "val_acc/street"} <= set(r) and r["loss/total"] > 0
    student = [r for r in recs if r["model"] == "student"][0]
    if alg == "MBCD":  # per-modality accuracy from the uni-modal heads, AMD diagnostics, loss terms
        assert {f"test_acc/{m}" for m in ("rgb", "flow", "audio")} <= set(student)
        assert {f"amd/p/{m}" for m in ("rgb", "flow", "audio")} <= set(student)
        assert {f"amd/s/{m}" for m in ("rgb", "flow", "audio")} <= set(student)
        assert sum(v for k, v in student.items() if k.startswith("loss/") and k != "loss/total") == pytest.approx(
            student["loss/total"], rel=1e-5
        )
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["epoch"] == 2 and ckpt["step"] == 4 and {"torch", "numpy", "python"} <= set(ckpt["rng"])
    assert "train.lr" in ckpt["fingerprint"] and "train.epochs" not in ckpt["fingerprint"]
    assert "epoch 2" in (out / "train.log").read_text()
    done = json.loads((out / "train_done.json").read_text())
    assert done["epochs"] == 2 and done["steps"] == 4 and done["selection"] == "best_val"

    caches, splits = study
    assert (
        evaluate_stage.main(
            ["--params", str(pfile), "--run", str(out), "--splits", str(splits), "--caches", str(caches)]
        )
        == 0
    )
    result = json.loads((out / "result.json").read_text())
    picked = result["selected_epoch"]
    evaluated = "teacher" if alg == "MBCD" else "student"
    want = max((r for r in recs if r["model"] == evaluated), key=lambda r: (r["val_acc"], r["epoch"]))
    assert result["evaluated"] == evaluated and result["selection"] == "best_val" and picked == want["epoch"]
    # evaluation of the selected state reproduces what the loop logged at that epoch
    assert result["test_acc"] == pytest.approx(want["test_acc"]) and result["val_acc"] == pytest.approx(want["val_acc"])
    assert result["in_domain_acc"] == result["val_acc"]
    matrix = result["confusion"]["matrix"]
    assert len(matrix) == 3 and sum(map(sum, matrix)) == 12
    assert sum(matrix[i][i] for i in range(3)) / 12 == pytest.approx(result["test_acc"])
    assert (out / "confusion.png").stat().st_size > 1000 and (out / "curves.png").stat().st_size > 1000
    if alg == "MBCD":  # the teacher has no uni-modal heads: the student's at the selected epoch are reported
        chosen = next(r for r in recs if r["model"] == "student" and r["epoch"] == picked)
        assert result["modality_heads"] == "student"
        assert all(result[f"test_acc/{m}"] == pytest.approx(chosen[f"test_acc/{m}"]) for m in ("rgb", "flow", "audio"))
        from mbcd import tracking

        run_id = json.loads((out / tracking.RUN_FILE).read_text())["run_id"]
        logged = set(tracking.list_artifacts(p["tracking"]["uri"], run_id))
        assert {"result.json", "metrics.jsonl", "confusion.png", "curves.png", "checkpoint"} <= logged
        assert tracking.list_artifacts(p["tracking"]["uri"], run_id, "checkpoint") == ["checkpoint/selected.pt"]
    else:
        assert "modality_heads" not in result


def _interrupt_after(k: int):
    class Killed(Exception):
        pass

    def hook(epoch: int, _alg: torch.nn.Module) -> None:
        if epoch == k:
            raise Killed(f"killed after epoch {epoch}")

    return Killed, hook


def test_killed_run_resumes_bitwise(params: dict[str, Any], study: tuple[Path, Path], tmp_path: Path) -> None:
    p = tiny_params(params, epochs=3)
    run = Run("synth", "ms_cartoon", MODS, "MBCD", 0)
    caches, splits = study
    run_training(p, run, splits, caches, tmp_path / "full")
    killed, hook = _interrupt_after(1)
    with pytest.raises(killed):
        run_training(p, run, splits, caches, tmp_path / "resumed", hooks={"after_epoch": hook})
    # a kill between writing metrics and the checkpoint leaves a line the resume must drop
    with open(tmp_path / "resumed" / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"epoch": 2, "step": 4, "model": "student", "val_acc": 1.0}) + "\n")
    run_training(
        {**p, "train": {**p["train"], "epochs": 2}}, run, splits, caches, tmp_path / "resumed"
    )  # epochs may grow
    run_training(p, run, splits, caches, tmp_path / "resumed")
    a, b = tmp_path / "full", tmp_path / "resumed"
    assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()
    ca, cb = (torch.load(d / "checkpoint.pt", weights_only=False) for d in (a, b))
    assert ca["step"] == cb["step"] == 6
    for key, value in ca["model"].items():
        assert torch.equal(value, cb["model"][key]), key
    sa, sb = (torch.load(d / "selected.pt", weights_only=False) for d in (a, b))
    assert sa["epoch"] == sb["epoch"] and all(torch.equal(v, sb["model"][k]) for k, v in sa["model"].items())


def test_checkpoint_from_another_configuration_names_the_keys(
    params: dict[str, Any], study: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    pfile = _write_params(tiny_params(params, epochs=1), tmp_path / "a.yaml")
    assert train_stage.main(_train_args(pfile, "ERM", "rgb+audio", study, out)) == 0
    other = tiny_params(params, epochs=2, lr=2e-3)
    other["model"]["head"]["hidden"] = 8
    pfile = _write_params(other, tmp_path / "b.yaml")
    assert train_stage.main(_train_args(pfile, "ERM", "rgb+audio", study, out)) == 1
    err = capsys.readouterr().err
    assert "checkpoint comes from another configuration" in err
    assert "train.lr: 0.001 -> 0.002" in err and "model.head.hidden: 16 -> 8" in err and "epochs" not in err


def test_nan_loss_stops_with_step_term_and_checkpoint(
    params: dict[str, Any], study: tuple[Path, Path], tmp_path: Path
) -> None:
    from mbcd import tracking

    p = tiny_params(params, epochs=3)
    p["study"] = "engine_nan"
    p["tracking"] = {"enabled": True, "uri": f"sqlite:///{tmp_path}/mlflow.db", "artifact_root": str(tmp_path / "art")}

    def poison(epoch: int, alg: torch.nn.Module) -> None:
        if epoch == 1:
            with torch.no_grad():
                next(alg.parameters()).fill_(float("nan"))

    out, (caches, splits) = tmp_path / "run", study
    with pytest.raises(NonFiniteLoss) as info:
        run_training(p, Run("synth", "ms_cartoon", MODS, "MBCD", 0), splits, caches, out, hooks={"after_epoch": poison})
    msg = str(info.value)
    assert "at step 3 (epoch 2)" in msg and f"last checkpoint: {out / 'checkpoint.pt'} (epoch 1)" in msg
    assert "loss/" in msg and "nan" in msg
    assert [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 1]
    assert torch.load(out / "checkpoint.pt", weights_only=False)["epoch"] == 1
    assert "non-finite loss" in (out / "train.log").read_text()
    (child,) = [r for r in tracking.find_runs(p["tracking"]["uri"], "engine_nan") if r["name"] == "ms_cartoon"]
    assert child["status"] == "FAILED" and "student/val_acc" in child["metrics"]


def test_missing_modality_cache_is_a_clear_error(
    params: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    study = make_tiny_study(tmp_path / "s", modalities=("rgb", "audio"))
    pfile = _write_params(tiny_params(params, epochs=1), tmp_path / "p.yaml")
    assert train_stage.main(_train_args(pfile, "ERM", "rgb+flow", study, tmp_path / "run")) == 1
    err = capsys.readouterr().err
    assert "studio/flow: no extraction cache" in err


def test_bad_labels_and_unknown_experiment(
    params: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    caches, splits = make_tiny_study(tmp_path / "s", modalities=("rgb",))
    (splits / "classes.tsv").write_text("label\tclass_name\n0\ta\n1\tb\n")  # 2 classes, but labels reach 2
    pfile = _write_params(tiny_params(params, epochs=1), tmp_path / "p.yaml")
    args = _train_args(pfile, "ERM", "rgb", (caches, splits), tmp_path / "run")
    assert train_stage.main(args) == 1
    assert "label 2 outside [0, 2)" in capsys.readouterr().err
    shutil.copy(splits / "train.tsv", tmp_path / "keep.tsv")
    args[args.index("ms_cartoon")] = "ms_moon"
    assert train_stage.main(args) == 1
    assert "unknown experiment 'ms_moon'" in capsys.readouterr().err
    assert DOMAINS[2] == "cartoon"


def test_evaluate_refuses_a_directory_without_a_run(
    params: dict[str, Any], study: tuple[Path, Path], tmp_path: Path
) -> None:
    caches, splits = study
    with pytest.raises(StageError, match="not a trained run directory"):
        evaluate_stage.evaluate_run(tiny_params(params), tmp_path, splits, caches)


def test_device_choice() -> None:
    from mbcd.engine.loop import pick_device

    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(StageError, match="train.device: 'cuda' requested but no CUDA device"):
            pick_device("cuda")


@pytest.mark.parametrize("alg", ["ERM", "Unimodal", "EMA", "SimMMDG", "CMRF", "MBCD", "MBCD_no_gcc"])
def test_every_algorithm_trains_one_epoch(
    params: dict[str, Any], study: tuple[Path, Path], tmp_path: Path, alg: str
) -> None:
    caches, splits = study
    mods = "audio" if alg == "Unimodal" else "rgb+audio"
    run_training(
        tiny_params(params, epochs=1), Run("synth", "ms_cartoon", mods, alg, 0), splits, caches, tmp_path / "r"
    )
    recs = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert recs and all(
        r["epoch"] == 1 and r["step"] == 2 and torch.isfinite(torch.tensor(r["loss/total"])) for r in recs
    )
    assert torch.load(tmp_path / "r" / "selected.pt", weights_only=False)["epoch"] == 1
