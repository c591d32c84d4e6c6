"""The study's sweep: experiments (source/target domain sets) and runs, derived from params.

Used by the Snakefile, dvc.yaml's generator, the split stage and the collect stage, so every
orchestrator expands the same axes the same way.

- ``multi_source`` (leave-one-domain-out): experiment ``ms_<target>``; sources = all other domains.
- ``single_source``: experiment ``ss_<source>``; targets = every other domain (each reported separately).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mbcd.modality import format_modality_set, parse_modality_set


@dataclass(frozen=True)
class Experiment:
    dataset: str
    protocol: str  # multi_source | single_source
    name: str  # ms_<target> | ss_<source>
    sources: tuple[str, ...]
    targets: tuple[str, ...]


@dataclass(frozen=True)
class Run:
    dataset: str
    experiment: str
    modalities: str  # canonical '+'-joined set
    algorithm: str  # a registered algorithm or an ablation name
    seed: int

    @property
    def path(self) -> Path:
        """Run directory relative to the runs root."""
        return Path(self.dataset, self.experiment, self.modalities, self.algorithm, f"seed{self.seed}")

    @property
    def identity(self) -> str:
        return f"{self.dataset}/{self.experiment}/{self.modalities}/{self.algorithm}/{self.seed}"


def experiments_for(dataset: str, domains: list[str], protocol: str) -> list[Experiment]:
    if protocol == "multi_source":
        return [
            Experiment(dataset, protocol, f"ms_{t}", tuple(d for d in domains if d != t), (t,)) for t in domains
        ]
    if protocol == "single_source":
        return [
            Experiment(dataset, protocol, f"ss_{s}", (s,), tuple(d for d in domains if d != s)) for s in domains
        ]
    raise ValueError(f"unknown protocol {protocol!r}")


def all_experiments(params: dict[str, Any], dataset: str, protocols: list[str] | None = None) -> list[Experiment]:
    """Every experiment of ``dataset`` for the given protocols (default: the study's)."""
    domains = params["datasets"][dataset]["domains"]
    out: list[Experiment] = []
    for protocol in protocols or params["experiments"]["protocols"]:
        out += experiments_for(dataset, domains, protocol)
    return out


def find_experiment(params: dict[str, Any], dataset: str, name: str) -> Experiment:
    for exp in all_experiments(params, dataset, ["multi_source", "single_source"]):
        if exp.name == name:
            return exp
    raise ValueError(f"unknown experiment {name!r} for dataset {dataset!r}")


def _modality_sets_for(algorithm: str, base: str, modality_sets: list[str]) -> list[str]:
    """Unimodal runs once per modality of each configured set; every other algorithm on the set itself."""
    if base != "Unimodal":
        return [format_modality_set(parse_modality_set(s)) for s in modality_sets]
    singles = {m for s in modality_sets for m in parse_modality_set(s)}
    return [format_modality_set((m,)) for m in sorted(singles, key=lambda m: ("rgb", "flow", "audio").index(m))]


def all_runs(params: dict[str, Any]) -> list[Run]:
    """The study's runs: datasets x experiments x modality sets x algorithms x seeds."""
    from mbcd.config import resolve_algorithm

    exp_cfg = params["experiments"]
    runs: list[Run] = []
    for dataset in exp_cfg["datasets"]:
        for exp in all_experiments(params, dataset):
            for algorithm in exp_cfg["algorithms"]:
                base, _ = resolve_algorithm(params, algorithm)
                for mods in _modality_sets_for(algorithm, base, exp_cfg["modality_sets"]):
                    for seed in exp_cfg["seeds"]:
                        runs.append(Run(dataset, exp.name, mods, algorithm, seed))
    return runs


def derive_seed(*identity: object) -> int:
    """A 31-bit seed derived from a run's identity (dataset, experiment, algorithm, modalities, seed)."""
    digest = hashlib.sha256("/".join(map(str, identity)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
