"""Algorithms (DomainBed-style ``nn.Module``s). Importing this package registers every algorithm.

``build_algorithm(name, modalities, num_classes, params)`` resolves ``name`` (an algorithm or an ablation of
``params.ablations``) to its registered class and merged params section, and constructs it.
"""

from __future__ import annotations

from typing import Any

from mbcd.algorithms import cmrf, ema, erm, mbcd, simmmdg, unimodal  # noqa: F401  (register)
from mbcd.algorithms.base import Algorithm
from mbcd.config import resolve_algorithm
from mbcd.modality import parse_modality_set
from mbcd.registries import ALGORITHMS

__all__ = ["Algorithm", "build_algorithm"]


def build_algorithm(
    name: str, modalities: str | tuple[str, ...] | list[str], num_classes: int, params: dict[str, Any]
) -> Algorithm:
    """Construct algorithm ``name`` (or ablation) for ``modalities`` ('rgb+audio' or a tuple) from ``params``."""
    mods = parse_modality_set(modalities) if isinstance(modalities, str) else tuple(modalities)
    base, section = resolve_algorithm(params, name)
    cls = ALGORITHMS.get(base)
    hparams = {"model": params["model"], "algorithm": section, "train": params["train"]}
    return cls(mods, num_classes, hparams)
