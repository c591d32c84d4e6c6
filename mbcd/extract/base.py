"""The extractor contract and its registry: one extractor per modality, keyed by the modality's name.

The runner (:mod:`mbcd.extract.runner`) loops over manifest rows and calls ``EXTRACTORS.get(modality)``; it
never branches on modality names, so a new modality is one registered class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from mbcd.registry import Registry

EXTRACTORS = Registry("extractor")
"""modality name -> :class:`Extractor` subclass."""


class ClipError(Exception):
    """One clip cannot be extracted; recorded in the cache's report (never aborts the domain by itself)."""

    def __init__(self, file: str | Path, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.file = str(file)
        self.reason = reason


def optional_int(row: dict[str, str], key: str) -> int | None:
    """A manifest cell as int, ``None`` when empty; a non-number is a :class:`ClipError` naming the column."""
    text = (row.get(key) or "").strip()
    if not text:
        return None
    try:
        return int(float(text))
    except ValueError:
        raise ClipError(f"manifest column {key}", f"{text!r} is not a number") from None


def optional_float(row: dict[str, str], key: str) -> float | None:
    """A manifest cell as float, ``None`` when empty."""
    text = (row.get(key) or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ClipError(f"manifest column {key}", f"{text!r} is not a number") from None


class Extractor(ABC):
    """Turns one manifest row into one fixed-shape array of the cache.

    ``cfg`` is the modality's section of ``params.extract``; ``root`` is the dataset root the manifest's
    paths are relative to. Subclasses set ``modality`` and ``dtype`` and implement ``shape``/``extract``.
    Per-clip problems raise :class:`ClipError` (file + reason); anything else is a bug or a bad file that the
    runner also records against :meth:`source_file`.
    """

    modality: str = ""
    dtype: np.dtype = np.dtype(np.uint8)

    def __init__(self, cfg: dict[str, Any], root: str | Path) -> None:
        self.cfg = dict(cfg)
        self.root = Path(root)

    @property
    @abstractmethod
    def shape(self) -> tuple[int, ...]:
        """Shape of one clip's array (without the leading clip axis)."""

    @abstractmethod
    def extract(self, row: dict[str, str]) -> np.ndarray:
        """The clip's array, ``shape`` and ``dtype`` exactly."""

    def source_file(self, row: dict[str, str]) -> str:
        """The file a failure of this row is reported against (the modality's manifest column)."""
        return row.get(self.modality) or row.get("rgb") or ""

    def path(self, rel: str) -> Path:
        """A manifest path resolved against the dataset root."""
        return self.root / rel.strip()

    @classmethod
    def check_params(cls, cfg: dict[str, Any], key: str) -> None:
        """Cross-key checks the schema cannot express; raise ValueError naming ``key``."""
        if "crop" in cfg and cfg["crop"] > cfg["resize"]:
            raise ValueError(f"{key}.crop ({cfg['crop']}) is larger than {key}.resize ({cfg['resize']})")
