"""The modality vocabulary. Modalities are data: every per-modality step loops over these keys."""

from __future__ import annotations

MODALITIES: tuple[str, ...] = ("rgb", "flow", "audio")
"""Canonical order; a modality set is always stored and named in this order."""

SHORT = {"rgb": "V", "flow": "F", "audio": "A"}
"""The paper's letters (V+A+F), for tables."""


def parse_modality_set(text: str) -> tuple[str, ...]:
    """``"audio+rgb"`` -> ``("rgb", "audio")``; raises ValueError naming the bad part."""
    parts = [p for p in text.split("+")]
    unknown = [p for p in parts if p not in MODALITIES]
    if unknown or not parts:
        raise ValueError(f"unknown modality {unknown[0] if unknown else text!r}; expected {'/'.join(MODALITIES)}")
    if len(set(parts)) != len(parts):
        raise ValueError(f"modality set {text!r} repeats a modality")
    return tuple(m for m in MODALITIES if m in parts)


def format_modality_set(mods: tuple[str, ...] | list[str]) -> str:
    """Canonical ``+``-joined name of a modality set."""
    return "+".join(m for m in MODALITIES if m in mods)


def paper_label(mods: tuple[str, ...] | list[str]) -> str:
    """``("rgb", "audio")`` -> ``"V+A"`` in the paper's V, A, F order."""
    order = ("rgb", "audio", "flow")
    return "+".join(SHORT[m] for m in order if m in mods)
