"""``torchrun --nproc_per_node 2 -m mbcd.stages.train`` (gloo, CPU) against one process on the same batches.

Each rank takes its half of the same global batch (same indices, same augmentation) and gradients are
averaged, so the parameter update of two processes matches one process's. With GroupNorm encoders and no head
dropout (nothing depends on the batch split or the rank's RNG) they agree to float round-off; with BatchNorm the
batch statistics are taken over each rank's half (SyncBatchNorm is GPU-only), and the test bounds that difference.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from test_engine_data import make_tiny_study, tiny_params

from mbcd.algorithms import build_algorithm
from mbcd.engine.loop import run_training, seed_everything
from mbcd.experiments import Run, derive_seed

torch.set_num_threads(1)
TORCHRUN = Path(sys.executable).with_name("torchrun")


def _args(pfile: Path, alg: str, mods: str, caches: Path, splits: Path, out: Path) -> list[str]:
    return ["--params", str(pfile), "--dataset", "synth", "--experiment", "ms_cartoon", "--algorithm", alg,
            "--modalities", mods, "--seed", "0", "--splits", str(splits), "--caches", str(caches), "--out", str(out)]  # fmt: skip


def _run(cmd: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MBCD_ORCHESTRATOR": "test"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _flat(state: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    return torch.cat([state[n].flatten().double() for n in names])


@pytest.mark.parametrize("norm", ["group", "batch"])
def test_two_processes_match_one_process(params: dict[str, Any], tmp_path: Path, norm: str) -> None:
    caches, splits = make_tiny_study(tmp_path / "s", modalities=("rgb", "audio"), clips_per_domain=96)
    p = tiny_params(params, epochs=1, optimizer="sgd", lr=0.05, augment=True, batch_size=64)
    p["model"]["encoder_args"] = {"rgb": {"norm": norm}, "audio": {"norm": norm}}
    if norm == "group":
        p["model"]["head"]["dropout"] = 0.0
    pfile = tmp_path / "p.yaml"
    pfile.write_text(yaml.safe_dump(p))
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, "-m", "mbcd.stages.train", *_args(pfile, "ERM", "rgb+audio", caches, splits, one)])
    _run([str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "mbcd.stages.train",
          *_args(pfile, "ERM", "rgb+audio", caches, splits, two)])  # fmt: skip
    seed_everything(derive_seed("synth", "ms_cartoon", "ERM", "rgb+audio", 0))
    init = build_algorithm("ERM", ("rgb", "audio"), 3, p).state_dict()
    s1, s2 = (torch.load(d / "checkpoint.pt", weights_only=False)["model"] for d in (one, two))
    names = [n for n, v in init.items() if v.is_floating_point() and "running" not in n]
    d1, d2 = _flat(s1, names) - _flat(init, names), _flat(s2, names) - _flat(init, names)
    cos = float(d1 @ d2 / (d1.norm() * d2.norm()))
    rel = float((d1 - d2).norm() / d1.norm())
    print(f"{norm} norm: update cosine 1 vs 2 processes: {cos:.6f}, relative difference {rel:.2e}")
    r1, r2 = (json.loads((d / "metrics.jsonl").read_text().splitlines()[0]) for d in (one, two))
    assert r1["step"] == r2["step"] == 2  # the same number of global steps
    if norm == "group":  # exact up to the order of float reductions
        assert d1.norm() > 0 and rel < 1e-4
        assert r2["loss/total"] == pytest.approx(r1["loss/total"], rel=1e-5)
        assert r2["val_acc"] == r1["val_acc"] and r2["test_acc"] == r1["test_acc"]
    else:
        assert d1.norm() > 0 and cos > 0.9 and rel < 0.45
        assert r2["loss/total"] == pytest.approx(r1["loss/total"], rel=0.05)
    assert not (two / "train.log").read_text().count("run synth") > 1  # only rank 0 writes


def test_mbcd_sums_confidences_over_ranks(params: dict[str, Any], tmp_path: Path) -> None:
    """MBCD under torchrun: s_k is summed over both ranks' halves, so it matches one process's s_k."""
    caches, splits = make_tiny_study(tmp_path / "s", modalities=("rgb", "flow", "audio"))
    p = tiny_params(params, epochs=1)
    pfile = tmp_path / "p.yaml"
    pfile.write_text(yaml.safe_dump(p))
    one, two = tmp_path / "one", tmp_path / "two"
    run_training(p, Run("synth", "ms_cartoon", "rgb+flow+audio", "MBCD", 0), splits, caches, one)
    _run([str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "mbcd.stages.train",
          *_args(pfile, "MBCD", "rgb+flow+audio", caches, splits, two)])  # fmt: skip
    r1, r2 = ([json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()] for d in (one, two))
    assert [r["model"] for r in r2] == ["student", "teacher"]
    for m in ("rgb", "flow", "audio"):  # one rank's half alone would give about half of s_k
        ratio = r2[0][f"amd/s/{m}"] / r1[0][f"amd/s/{m}"]
        print(f"amd/s/{m}: 2 processes / 1 process = {ratio:.3f}")
        assert 0.85 < ratio < 1.15
    assert all(torch.isfinite(torch.tensor(r["loss/total"])) for r in r2)
