"""Per-experiment manifests: source train, source validation and target test (both protocols).

- Validation (``split.validation``): ``source_test`` = the sources' own test split; ``source_holdout`` = a
  seeded hold-out of ``split.holdout_fraction`` of the sources' train split, stratified by domain and class,
  its seed derived from (dataset, experiment) with :func:`mbcd.experiments.derive_seed` (the same hold-out for
  every run of the experiment, whatever its seed).
- Test (``split.target_set``): every clip of the target domain(s) (``all``, the public HAC protocol) or only
  their test split (``test``, the CMRF protocol).
- Clips an extraction report lists as failed (any modality) are dropped and listed with ``stage=extract``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mbcd.data.manifest import Reject, read_classes, read_manifest
from mbcd.experiments import Experiment, derive_seed
from mbcd.stages.common import StageError


def load_manifests(folder: Path, domains: Iterable[str]) -> tuple[pd.DataFrame, list[str]]:
    """All domains' manifests concatenated, and the class list; errors name the file."""
    if not (folder / "classes.tsv").is_file():
        raise StageError(f"{folder / 'classes.tsv'}: not found; run `mbcd manifest` first")
    try:
        classes = read_classes(folder / "classes.tsv")
        frames = [read_manifest(folder / f"{d}.tsv") for d in domains]
    except (ValueError, FileNotFoundError) as err:
        raise StageError(str(err)) from None
    df = pd.concat(frames, ignore_index=True)
    dup = df["clip_id"][df["clip_id"].duplicated()]
    if len(dup):
        raise StageError(f"{folder}: clip_id {dup.iloc[0]!r} appears more than once across the domain manifests")
    bad = df[(df["label"] < 0) | (df["label"] >= len(classes))]
    if len(bad):
        raise StageError(
            f"{folder}: clip {bad['clip_id'].iloc[0]!r} has label {bad['label'].iloc[0]} outside classes.tsv"
        )
    return df, classes


def extraction_failures(caches: Path, domains: Iterable[str]) -> dict[str, Reject]:
    """clip_id -> reject, from every ``<caches>/<domain>/<modality>/report.json`` present (none if no caches)."""
    out: dict[str, Reject] = {}
    if not caches.is_dir():
        return out
    for domain in domains:
        for report in sorted((caches / domain).glob("*/report.json")):
            try:
                failures = json.loads(report.read_text()).get("failures", [])
                items = [(str(f["clip_id"]), str(f.get("file", "")), str(f.get("reason", ""))) for f in failures]
            except (json.JSONDecodeError, AttributeError, KeyError, TypeError) as err:
                raise StageError(f"{report}: malformed extraction report ({type(err).__name__}: {err})") from None
            modality = report.parent.name
            for clip_id, file, reason in items:
                out.setdefault(
                    clip_id,
                    Reject(
                        clip_id, domain, file or str(report), "", f"{modality} extraction failed: {reason}", "extract"
                    ),
                )
    return out


def holdout_mask(train: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask over ``train``: ``round(fraction * n)`` clips of every (domain, class) group, seeded."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(train), dtype=bool)
    for _, idx in sorted(train.groupby(["domain", "label"]).indices.items()):
        k = int(round(fraction * len(idx)))
        mask[rng.permutation(np.sort(idx))[:k]] = True
    return mask


def experiment_split(df: pd.DataFrame, exp: Experiment, split_cfg: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """``{"train", "val", "test"}`` manifests of one experiment (target clips never in train or val)."""
    src = df[df["domain"].isin(exp.sources)]
    tgt = df[df["domain"].isin(exp.targets)]
    src_train = src[src["split"] == "train"].reset_index(drop=True)
    if split_cfg["validation"] == "source_test":
        train, val = src_train, src[src["split"] == "test"]
    else:
        mask = holdout_mask(
            src_train, split_cfg["holdout_fraction"], derive_seed(exp.dataset, exp.name, "source_holdout")
        )
        train, val = src_train[~mask], src_train[mask]
    test = tgt if split_cfg["target_set"] == "all" else tgt[tgt["split"] == "test"]
    parts = {"train": train, "val": val, "test": test}
    for name, part in parts.items():
        if part.empty:
            raise StageError(
                f"experiment {exp.name}: the {name} set is empty (sources {', '.join(exp.sources)}, targets "
                f"{', '.join(exp.targets)}, split.validation {split_cfg['validation']}, split.target_set {split_cfg['target_set']})"
            )
    leak = set(tgt["clip_id"]) & (set(train["clip_id"]) | set(val["clip_id"]))
    assert not leak, f"target clips in train/val: {sorted(leak)[:3]}"
    return {k: v.sort_values(["domain", "label", "clip_id"]).reset_index(drop=True) for k, v in parts.items()}


def counts(parts: dict[str, pd.DataFrame], classes: list[str]) -> dict[str, Any]:
    """Per split: total and clips per domain and class name."""
    out: dict[str, Any] = {}
    for name, part in parts.items():
        per = {
            d: {classes[c]: int(n) for c, n in sorted(g["label"].value_counts().items())}
            for d, g in part.groupby("domain")
        }
        out[name] = {"total": len(part), "per_domain": per}
    return out
