"""Checkpoints: atomic writes, RNG capture and the configuration fingerprint that guards resume.

``checkpoint.pt`` holds the whole algorithm ``state_dict`` (student, teacher, step buffers), its optimiser
state, the RNG states of torch (and CUDA), numpy and Python, the finished epoch and step, and the fingerprint
of the configuration that produced it. Resuming with a different configuration fails and names the keys that
differ. Every file is written to a temporary name in the same folder and renamed into place, so a killed job
never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mbcd.stages.common import StageError

# train keys that may change between a run and its resume without changing what it computes
RESUMABLE_TRAIN_KEYS = ("epochs", "num_workers", "device")


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {'a.b': value} (lists kept as values)."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def fingerprint(resolved: dict[str, Any]) -> dict[str, Any]:
    """The flat configuration a checkpoint must match: run identity, model, algorithm, train, extraction."""
    train = {k: v for k, v in resolved["train"].items() if k not in RESUMABLE_TRAIN_KEYS}
    parts = {
        "run": resolved["run"],
        "model": resolved["model"],
        "algorithm": resolved["algorithm"],
        "train": train,
        "extract": resolved.get("extract", {}),
    }
    # JSON round trip: tuples become lists, so a fingerprint compares equal after being saved and loaded
    return json.loads(json.dumps(flatten(parts), sort_keys=True))


def diff_fingerprints(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """'key: saved -> current' for every key that differs (or exists on one side only)."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if a != b:
            out.append(f"{key}: {a!r} -> {b!r}")
    return out


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(text: str, path: str | Path) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def save_checkpoint(path: Path, algorithm: torch.nn.Module, epoch: int, step: int, fp: dict[str, Any]) -> None:
    atomic_save(
        {
            "model": algorithm.state_dict(),
            "optimizer": algorithm.optimizer.state_dict(),
            "rng": rng_state(),
            "epoch": epoch,
            "step": step,
            "fingerprint": fp,
        },
        path,
    )


def load_checkpoint(path: Path, fp: dict[str, Any], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint and check its fingerprint against ``fp``; StageError names the differing keys."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unreadable file is reported the same way
        raise StageError(f"{path}: cannot read checkpoint ({err})") from None
    for key in ("model", "optimizer", "rng", "epoch", "step", "fingerprint"):
        if key not in ckpt:
            raise StageError(f"{path}: not a training checkpoint (no {key!r})")
    diff = diff_fingerprints(ckpt["fingerprint"], fp)
    if diff:
        raise StageError(
            f"{path}: checkpoint comes from another configuration; differing keys: {'; '.join(diff)} "
            "(use a new --out or delete the run directory)"
        )
    return ckpt


def restore(algorithm: torch.nn.Module, ckpt: dict[str, Any]) -> None:
    """Load model, optimiser and RNG states from a checked checkpoint."""
    algorithm.load_state_dict(ckpt["model"])
    algorithm.optimizer.load_state_dict(ckpt["optimizer"])
    set_rng_state(ckpt["rng"])
