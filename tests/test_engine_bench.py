"""``mbcd bench train`` runs at test size and reports every figure it promises (the figures are not asserted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from test_engine_data import DOMAINS, make_tiny_study, tiny_params

from mbcd.bench.train import run_bench

torch.set_num_threads(1)


def test_bench_train_reports_ratio_and_data_wait(params: dict[str, Any], tmp_path: Path) -> None:
    caches, splits = make_tiny_study(tmp_path, modalities=("rgb", "audio"))
    out = run_bench(tiny_params(params), ("rgb", "audio"), 2, 1, caches, splits, DOMAINS)
    assert out["steps"] == 2 and out["prefetch_depth"] == params["train"]["num_workers"]
    assert out["step_s/ERM"] > 0 and out["step_s/MBCD"] > 0
    assert out["ratio_MBCD_over_ERM"] == out["step_s/MBCD"] / out["step_s/ERM"]
    assert all(0 <= out[f"data_wait_fraction/{a}"] < 1 for a in ("ERM", "MBCD"))
