"""``mbcd bench train``: training step time of MBCD against ERM, and the share of a step spent waiting for data.

Both algorithms get the same encoders, the same batch and the same thread count; the reported ratio is the
median MBCD step over the median ERM step (issue 6 target: <= 2.2x on CPU — MBCD's extra work is a second fused
pass through the trainable stage, the inner gradient and a teacher forward). The data-wait figure times the
engine's own batch path (:class:`mbcd.engine.data.BatchLoader`: gather from the in-memory cache arrays, convert,
augment) against the measured step (target <= 5%). Without ``--caches/--splits`` it writes a cache of random
clips in the contract's format at the default study's sizes (rgb/flow 8x48x48, audio 129x97).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mbcd.config import load_params
from mbcd.engine.data import BatchLoader, ClipSet, prefetch, read_split

SHAPES = {"rgb": (8, 48, 48, 3), "flow": (8, 48, 48, 2), "audio": (129, 97)}


def _write_random_study(root: Path, n: int, mods: tuple[str, ...]) -> tuple[Path, Path]:
    """One domain 'bench' with ``n`` random clips per modality and a train.tsv listing them."""
    rng = np.random.default_rng(0)
    for m in mods:
        folder = root / "cache" / "bench" / m
        folder.mkdir(parents=True)
        shape = (n,) + SHAPES[m]
        arr = (
            rng.normal(0, 1, shape).astype(np.float16) if m == "audio" else rng.integers(0, 256, shape, dtype=np.uint8)
        )
        np.save(folder / "data.npy", arr)
        (folder / "index.tsv").write_text("row\tclip_id\n" + "".join(f"{i}\tc{i}\n" for i in range(n)))
    split = root / "splits"
    split.mkdir()
    (split / "train.tsv").write_text("clip_id\tdomain\tlabel\n" + "".join(f"c{i}\tbench\t{i % 6}\n" for i in range(n)))
    return root / "cache", split


def _train_steps(
    alg: torch.nn.Module, loader: BatchLoader, steps: int, warmup: int, depth: int
) -> tuple[list[float], list[float]]:
    """Run the engine's loop (prefetching loader, update) for warmup + steps; (step seconds, data-wait seconds)."""
    step_s, wait_s, gen, i = [], [], torch.Generator().manual_seed(0), 0
    while i < steps + warmup:
        batches = prefetch(loader.epoch(gen), depth)
        while i < steps + warmup:
            t0 = time.perf_counter()
            batch = next(batches, None)
            t1 = time.perf_counter()
            if batch is None:
                break
            alg.update(batch, i + 1)
            if i >= warmup:
                wait_s.append(t1 - t0)
                step_s.append(time.perf_counter() - t1)
            i += 1
        batches.close()
    return step_s, wait_s


def run_bench(params: dict[str, Any], mods: tuple[str, ...], steps: int, warmup: int, caches: Path, splits: Path,
              domains: list[str]) -> dict[str, Any]:  # fmt: skip
    """Median step time of ERM and MBCD on the same batches; data wait as a share of the step time."""
    from mbcd.algorithms import build_algorithm

    bs, depth = params["train"]["batch_size"], int(params["train"].get("num_workers", 0))
    clips = ClipSet(read_split(splits / "train.tsv"), caches, mods, domains)
    loader = BatchLoader(clips, bs, train=True, augment=bool(params["train"].get("augment", True)))
    t0 = time.perf_counter()
    n_sync = sum(1 for _ in loader.epoch(torch.Generator().manual_seed(1)))
    out: dict[str, Any] = {"modalities": "+".join(mods), "batch_size": bs, "threads": torch.get_num_threads(),
                           "steps": steps, "prefetch_depth": depth,
                           "loader_s_per_batch": (time.perf_counter() - t0) / n_sync}  # fmt: skip
    num_classes = int(clips.labels.max()) + 1
    for name in ("ERM", "MBCD"):
        torch.manual_seed(0)
        alg = build_algorithm(name, mods, num_classes, params)
        alg.train()
        step_s, wait_s = _train_steps(alg, loader, steps, warmup, depth)
        out[f"step_s/{name}"] = statistics.median(step_s)
        out[f"data_wait_fraction/{name}"] = sum(wait_s) / (sum(wait_s) + sum(step_s))
    out["ratio_MBCD_over_ERM"] = out["step_s/MBCD"] / out["step_s/ERM"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mbcd bench train", description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--modalities", default="rgb+flow+audio")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--prefetch", type=int, help="batches prepared ahead (default: params train.num_workers)")
    p.add_argument("--caches", type=Path, help="data/cache/<dataset> (default: random clips at the default sizes)")
    p.add_argument("--splits", type=Path, help="a split folder with train.tsv (with --caches)")
    p.add_argument("--domains", default="", help="comma-separated domains of --caches (default: from params)")
    p.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    params["train"]["device"] = "cpu"
    if args.prefetch is not None:
        params["train"]["num_workers"] = args.prefetch
    mods = tuple(m for m in ("rgb", "flow", "audio") if m in args.modalities.split("+"))
    with tempfile.TemporaryDirectory() as tmp:
        if args.caches is None:
            n = params["train"]["batch_size"] * 4
            caches, splits = _write_random_study(Path(tmp), n, mods)
            domains = ["bench"]
        else:
            caches, splits = args.caches, args.splits
            domains = args.domains.split(",") if args.domains else next(iter(params["datasets"].values()))["domains"]
        result = run_bench(params, mods, args.steps, args.warmup, caches, splits, domains)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0
