"""The training engine: one run from split manifests and caches to a self-describing run directory.

:func:`prepare` turns (params, run identity, split and cache folders) into a :class:`RunSetup` — the resolved
params written to ``params.json``, the derived seed, the class count and the domain list. :class:`Trainer`
then trains epoch by epoch (DomainBed style: the algorithm steps itself), evaluates student and teacher on
source validation and target test after every epoch, appends the records to ``metrics.jsonl``, refreshes
``selected.pt`` from validation only, and writes ``checkpoint.pt`` atomically. A rerun on the same directory
resumes from the checkpoint; shuffling and augmentation draw from a generator seeded by (seed, epoch), and the
global RNG states travel in the checkpoint, so a resumed run reproduces an uninterrupted one bit for bit on CPU.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mbcd import distributed as dist
from mbcd.config import resolve_algorithm
from mbcd.engine import checkpoint as ck
from mbcd.engine.data import BatchLoader, ClipSet, SplitRows, prefetch, read_split
from mbcd.engine.evaluation import evaluate, to_device
from mbcd.engine.selection import read_metrics, select_epoch
from mbcd.experiments import Run, derive_seed, find_experiment
from mbcd.modality import parse_modality_set
from mbcd.models.precision import Precision
from mbcd.stages.common import StageError

log = logging.getLogger("mbcd.train")
SPLITS = ("train", "val", "test")


class NonFiniteLoss(StageError):
    """A loss term became NaN or inf; the message names the step, the term and the last checkpoint."""


@dataclass
class RunSetup:
    """Everything a run needs besides the model: identity, resolved params, data locations, class count."""

    params: dict[str, Any]
    run: Run
    run_dir: Path
    caches: Path
    splits: dict[str, SplitRows]
    resolved: dict[str, Any]
    modalities: tuple[str, ...]
    num_classes: int
    class_names: list[str]
    domain_names: list[str]
    seed: int
    base_algorithm: str = field(default="")


def _classes(splits_dir: Path, rows: dict[str, SplitRows]) -> list[str]:
    """Class names from a classes.tsv next to the splits (or one folder up), else 0..max label."""
    for cand in (splits_dir / "classes.tsv", splits_dir.parent / "classes.tsv"):
        if cand.is_file():
            with open(cand, newline="") as fh:
                rows = list(csv.DictReader(fh, delimiter="\t"))
            try:
                return [r["class_name"] for r in sorted(rows, key=lambda r: int(r["label"]))]
            except (KeyError, ValueError, TypeError):
                raise StageError(f"{cand}: expected columns label (integer) and class_name") from None
    top = max(int(r.labels.max()) for r in rows.values())
    return [str(i) for i in range(top + 1)]


def prepare(params: dict[str, Any], run: Run, splits_dir: Path, caches: Path, run_dir: Path) -> RunSetup:
    """Resolve the run: algorithm section, derived seed, split manifests, classes, domains."""
    base, section = resolve_algorithm(params, run.algorithm)
    modalities = parse_modality_set(run.modalities)
    if run.dataset not in params["datasets"]:
        raise StageError(f"--dataset: {run.dataset!r} has no block in params datasets")
    exp = find_experiment(params, run.dataset, run.experiment)
    rows = {s: read_split(Path(splits_dir) / f"{s}.tsv") for s in SPLITS}
    class_names = _classes(Path(splits_dir), rows)
    for r in rows.values():
        bad = np.flatnonzero((r.labels < 0) | (r.labels >= len(class_names)))
        if len(bad):
            raise StageError(f"{r.path}: row {bad[0] + 2}: label {r.labels[bad[0]]} outside [0, {len(class_names)})")
    seed = derive_seed(run.dataset, run.experiment, run.algorithm, run.modalities, run.seed)
    ident = {
        "dataset": run.dataset, "experiment": run.experiment, "modalities": run.modalities,
        "algorithm": run.algorithm, "base_algorithm": base, "seed": run.seed, "derived_seed": seed,
        "sources": list(exp.sources), "targets": list(exp.targets), "num_classes": len(class_names),
    }  # fmt: skip
    resolved = {**params, "run": ident, "algorithm": section}
    domains = list(params["datasets"][run.dataset]["domains"])
    return RunSetup(params, run, Path(run_dir), Path(caches), rows, resolved, modalities, len(class_names),
                    class_names, domains, seed, base)  # fmt: skip


def pick_device(pref: str) -> torch.device:
    """``auto``: CUDA when present (the local rank's GPU under torchrun), else CPU."""
    if pref == "cuda" and not torch.cuda.is_available():
        raise StageError("train.device: 'cuda' requested but no CUDA device is available")
    if pref in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", dist.rank() % torch.cuda.device_count())
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Average the epoch's loss/diagnostic means over data-parallel ranks (identity in one process)."""
    if dist.world_size() == 1 or not values:
        return values
    keys = sorted(values)
    total = dist.all_reduce_sum(torch.tensor([values[k] for k in keys], dtype=torch.float64))
    return {k: float(v) / dist.world_size() for k, v in zip(keys, total.tolist(), strict=True)}


def _sync_buffers(module: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics), as DDP does, before evaluation."""
    if dist.world_size() == 1:
        return
    for buf in module.buffers():
        torch.distributed.broadcast(buf, src=0)


class Trainer:
    """Train one run (see the module docstring). ``hooks['after_epoch'](epoch, algorithm)`` is for tests."""

    def __init__(self, setup: RunSetup, algorithm: torch.nn.Module, device: torch.device, tracker: Any,
                 hooks: dict[str, Callable[..., None]] | None = None) -> None:  # fmt: skip
        self.s, self.alg, self.device, self.tracker = setup, algorithm, device, tracker
        self.hooks = hooks or {}
        self.train_cfg = setup.params["train"]
        self.precision = Precision.from_params(self.train_cfg)
        self.models = ["student", "teacher"] if getattr(algorithm, "has_teacher", False) else ["student"]
        evaluate_model = setup.params["eval"]["evaluate"]
        self.selected_model = evaluate_model if evaluate_model in self.models else "student"
        self.fp = ck.fingerprint(setup.resolved)
        self.is_main = dist.rank() == 0
        self.ckpt_path = setup.run_dir / "checkpoint.pt"
        self.metrics_path = setup.run_dir / "metrics.jsonl"
        bs, eval_bs = self.train_cfg["batch_size"], setup.params["eval"].get("batch_size", 64)

        def clips(split: str) -> ClipSet:
            return ClipSet(setup.splits[split], setup.caches, setup.modalities, setup.domain_names)

        aug = bool(self.train_cfg.get("augment", True))
        self.train_loader = BatchLoader(clips("train"), bs, True, aug, dist.rank(), dist.world_size())
        # only rank 0 evaluates (and writes); the other ranks never load the evaluation splits
        self.eval_loaders = {s: BatchLoader(clips(s), eval_bs, False) for s in ("val", "test")} if self.is_main else {}
        self.epoch, self.step = 0, 0

    def resume_or_start(self) -> None:
        """Load checkpoint.pt when present (and drop metrics lines past it); else start a fresh directory."""
        if self.ckpt_path.exists():
            # on CPU: the RNG states must stay CPU tensors; load_state_dict copies weights onto the device
            ckpt = ck.load_checkpoint(self.ckpt_path, self.fp, map_location="cpu")
            ck.restore(self.alg, ckpt)
            self.epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
            if self.is_main and self.metrics_path.exists():
                kept = [r for r in read_metrics(self.metrics_path) if r["epoch"] <= self.epoch]
                ck.atomic_write_text("".join(json.dumps(r) + "\n" for r in kept), self.metrics_path)
            log.info("resumed from %s at epoch %d, step %d", self.ckpt_path, self.epoch, self.step)
            return
        if self.is_main:
            for name in ("metrics.jsonl", "selected.pt", "train_done.json"):
                (self.s.run_dir / name).unlink(missing_ok=True)
            ck.atomic_write_text(json.dumps(self.s.resolved, indent=2, sort_keys=True) + "\n",
                                 self.s.run_dir / "params.json")  # fmt: skip

    def _stop(self, what: str) -> NonFiniteLoss:
        """The error that ends a run whose loss went non-finite: step, term and the last checkpoint."""
        where = f"{self.ckpt_path} (epoch {self.epoch})" if self.ckpt_path.exists() else "none yet"
        return NonFiniteLoss(
            f"{self.s.run.identity}: non-finite loss at step {self.step} (epoch {self.epoch + 1}): {what}; "
            f"the run stops; last checkpoint: {where}"
        )

    def _update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One algorithm step; a NaN/inf loss term (refused by the algorithm or returned) stops the run."""
        try:
            with self.precision.autocast(self.device):
                out = self.alg.update(to_device(batch, self.device, self.precision), self.step)
        except FloatingPointError as err:
            raise self._stop(str(err)) from err
        for key, value in out.items():
            if key.startswith("loss/") and not math.isfinite(value):
                raise self._stop(f"loss term {key!r} is {value}")
        return out

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training split; returns the epoch means of every value update() reported."""
        gen = torch.Generator().manual_seed(derive_seed(self.s.seed, "epoch", epoch))
        sums: dict[str, float] = {}
        n, t_data, t_all = 0, 0.0, time.perf_counter()
        self.alg.train()
        batches = prefetch(self.train_loader.epoch(gen), int(self.train_cfg.get("num_workers", 0)))
        while True:
            t0 = time.perf_counter()
            batch = next(batches, None)
            t_data += time.perf_counter() - t0
            if batch is None:
                break
            self.step += 1
            out = self._update(batch)
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            n += 1
        t_all = time.perf_counter() - t_all
        log.info("epoch %d: %d steps, %.2fs, data wait %.1f%%", epoch, n, t_all, 100 * t_data / max(t_all, 1e-9))
        return _mean_over_ranks({k: v / max(n, 1) for k, v in sorted(sums.items())})

    def records(self, epoch: int, losses: dict[str, float]) -> list[dict[str, Any]]:
        """One metrics.jsonl record per evaluated model (student, and teacher when there is one)."""
        out = []
        for model in self.models:
            rec: dict[str, Any] = {"epoch": epoch, "step": self.step, "model": model}
            for split, prefix in (("val", "val_acc"), ("test", "test_acc")):
                scores = evaluate(self.alg, self.eval_loaders[split], model, self.s.num_classes,
                                  self.s.domain_names, self.device, self.precision)  # fmt: skip
                rec.update(scores.flat(prefix))
            rec.update(losses)
            out.append(rec)
        return out

    def _finish_epoch(self, epoch: int, losses: dict[str, float]) -> None:
        """Rank 0: append records, log them, refresh selected.pt, then write checkpoint.pt (in that order)."""
        recs = self.records(epoch, losses)
        with open(self.metrics_path, "a") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in recs)
        for r in recs:
            nums = {f"{r['model']}/{k}": v for k, v in r.items() if k not in ("epoch", "step", "model")}
            self.tracker.log_metrics(nums, step=epoch)
        policy = self.s.params["eval"]["selection"]
        if select_epoch(policy, read_metrics(self.metrics_path), self.selected_model) == epoch:
            ck.atomic_save({"model": self.alg.state_dict(), "epoch": epoch, "step": self.step,
                            "selection": policy, "model_name": self.selected_model}, self.s.run_dir / "selected.pt")  # fmt: skip
        ck.save_checkpoint(self.ckpt_path, self.alg, epoch, self.step, self.fp)
        log.info("epoch %d: %s", epoch, {r["model"]: round(r["val_acc"], 4) for r in recs})

    def fit(self) -> None:
        """Train the remaining epochs (all of them on a fresh directory)."""
        self.resume_or_start()
        for epoch in range(self.epoch + 1, self.train_cfg["epochs"] + 1):
            losses = self.train_epoch(epoch)
            _sync_buffers(self.alg)
            if self.is_main:
                self._finish_epoch(epoch, losses)
            self.epoch = epoch
            if dist.world_size() > 1:
                torch.distributed.barrier()
            if "after_epoch" in self.hooks:
                self.hooks["after_epoch"](epoch, self.alg)
        if self.is_main:
            self._finish_run()

    def _finish_run(self) -> None:
        """Check that selected.pt holds the policy's pick on the complete metrics; write train_done.json last."""
        policy = self.s.params["eval"]["selection"]
        want = select_epoch(policy, read_metrics(self.metrics_path), self.selected_model)
        got = torch.load(self.s.run_dir / "selected.pt", map_location="cpu", weights_only=False)["epoch"]
        if got != want:
            raise StageError(f"{self.s.run_dir / 'selected.pt'}: holds epoch {got} but {policy} picks {want}")
        done = {"epochs": self.epoch, "steps": self.step, "selection": policy, "selected_epoch": want,
                "selected_model": self.selected_model}  # fmt: skip
        ck.atomic_write_text(json.dumps(done, indent=2) + "\n", self.s.run_dir / "train_done.json")


def _file_logging(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def init_distributed(device_pref: str) -> bool:
    """Join the torchrun process group (gloo on CPU, nccl on GPU) when launched with WORLD_SIZE > 1.

    Returns True when this call created the group (the caller then destroys it)."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_distributed():
        cuda = device_pref in ("auto", "cuda") and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
        return True
    return False


def run_training(params: dict[str, Any], run: Run, splits: Path, caches: Path, run_dir: Path,
                 hooks: dict[str, Callable[..., None]] | None = None) -> RunSetup:  # fmt: skip
    """Train ``run`` into ``run_dir`` (resuming when it holds a checkpoint); only rank 0 writes files."""
    import os

    from mbcd import tracking
    from mbcd.algorithms import build_algorithm

    own_group = init_distributed(params["train"].get("device", "auto"))
    setup = prepare(params, run, splits, caches, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = _file_logging(run_dir / "train.log") if dist.rank() == 0 else None
    try:
        device = pick_device(params["train"].get("device", "auto"))
        seed_everything(setup.seed)
        algorithm = build_algorithm(run.algorithm, setup.modalities, setup.num_classes, params).to(device)
        Precision.from_params(params["train"]).prepare(algorithm)  # channels_last / torch.compile switches
        log.info("run %s: seed %d, device %s, %d ranks", run.identity, setup.seed, device, dist.world_size())
        track_params = params if dist.rank() == 0 else {**params, "tracking": {**params["tracking"], "enabled": False}}
        with tracking.open_run(track_params, run, run_dir, os.environ.get("MBCD_ORCHESTRATOR", "cli")) as tr:
            tr.log_params(setup.resolved)
            trainer = Trainer(setup, algorithm, device, tr, hooks)
            try:
                trainer.fit()
            except NonFiniteLoss as err:
                log.error("%s", err)
                raise
    finally:
        if own_group:
            torch.distributed.destroy_process_group()
        if handler is not None:
            log.removeHandler(handler)
            handler.close()
    return setup
