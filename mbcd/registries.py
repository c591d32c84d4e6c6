"""The project's registries. Importing a subpackage registers what it defines.

``names(kind)`` imports every subpackage first, so the CLI, the params check and the tests see
everything that is registered.
"""

from __future__ import annotations

import importlib

from mbcd.registry import Registry

ALGORITHMS = Registry("algorithm")  # mbcd.algorithms: DomainBed-style Algorithm subclasses
ENCODERS = Registry("encoder")  # mbcd.models.encoders: per-modality feature extractors
ADAPTERS = Registry("adapter")  # mbcd.data.adapters: dataset layout -> manifests
ANALYSES = Registry("analysis")  # mbcd.analysis: post-training analyses

_BY_KIND = {"algorithm": ALGORITHMS, "encoder": ENCODERS, "adapter": ADAPTERS, "analysis": ANALYSES}
_PACKAGES = {
    "algorithm": "mbcd.algorithms",
    "encoder": "mbcd.models",
    "adapter": "mbcd.data.adapters",
    "analysis": "mbcd.analysis",
}


def load(kind: str) -> Registry:
    """The registry of ``kind`` with its package imported (so it is filled)."""
    try:
        importlib.import_module(_PACKAGES[kind])
    except ModuleNotFoundError as err:
        if err.name != _PACKAGES[kind]:
            raise
    return _BY_KIND[kind]


def names(kind: str) -> list[str]:
    return load(kind).names()
