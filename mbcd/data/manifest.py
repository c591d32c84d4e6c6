"""The manifest format of ``docs/contracts.md``: one TSV per domain, ``classes.tsv``, ``rejects.tsv``.

Every adapter produces rows with exactly :data:`COLUMNS`; :func:`write_tsv` writes them and
:func:`read_manifest` reads them back with fixed dtypes, raising an error that names the file, the row and
the reason when a manifest is malformed. Output folders are written atomically (:func:`atomic_dir`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

COLUMNS: dict[str, type] = {
    "clip_id": str,
    "domain": str,
    "split": str,
    "label": int,
    "class_name": str,
    "rgb": str,
    "flow": str,
    "audio": str,
    "start_frame": int,
    "stop_frame": int,
    "start_sec": float,
    "stop_sec": float,
    "fps": float,
}
"""Manifest columns and their Python types, in file order."""

REJECT_COLUMNS = ["clip_id", "domain", "file", "row", "reason", "stage"]
CLASS_COLUMNS = ["label", "class_name"]
SPLITS = ("train", "test")


@dataclass
class Reject:
    """A row (or a whole source file, ``row=""``) that cannot be used, and why."""

    clip_id: str
    domain: str
    file: str
    row: str
    reason: str
    stage: str = "manifest"

    def line(self) -> str:
        where = f"{self.file}, row {self.row}" if self.row != "" else self.file
        return f"{where}: {self.reason}" + (f" (clip {self.clip_id})" if self.clip_id else "")


@dataclass
class ManifestSet:
    """What an adapter produces: candidate rows (with their source file/row), classes, early rejects."""

    classes: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    sources: list[tuple[str, str]] = field(default_factory=list)  # (file, row) per entry of rows
    rejects: list[Reject] = field(default_factory=list)

    def add(self, row: dict[str, Any], file: str, line: int | str) -> None:
        self.rows.append(row)
        self.sources.append((file, str(line)))

    def reject(self, row: dict[str, Any] | None, file: str, line: int | str, reason: str) -> None:
        row = row or {}
        self.rejects.append(Reject(str(row.get("clip_id", "")), str(row.get("domain", "")), file, str(line), reason))


def _write_frame(df: pd.DataFrame, path: Path) -> None:
    """Write a TSV through a temporary file in the same folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        df.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_tsv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write manifest rows (dicts with :data:`COLUMNS`) as a TSV, columns in contract order."""
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    _write_frame(df.fillna(""), Path(path))


def write_classes(path: str | Path, classes: list[str]) -> None:
    _write_frame(pd.DataFrame({"label": range(len(classes)), "class_name": classes}), Path(path))


def write_rejects(path: str | Path, rejects: list[Reject]) -> None:
    df = pd.DataFrame([r.__dict__ for r in rejects], columns=REJECT_COLUMNS)
    _write_frame(df, Path(path))


def read_rejects(path: str | Path) -> list[Reject]:
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return [Reject(**rec) for rec in df.to_dict("records")]


def read_classes(path: str | Path) -> list[str]:
    """``classes.tsv`` -> class names by label; labels must be 0..C-1 in order."""
    df = pd.read_csv(path, sep="\t", dtype={"label": int, "class_name": str}, keep_default_na=False)
    if list(df.columns) != CLASS_COLUMNS or list(df["label"]) != list(range(len(df))):
        raise ValueError(f"{path}: expected columns {CLASS_COLUMNS} with labels 0..C-1 in order")
    return list(df["class_name"])


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest TSV with the contract's dtypes; a missing column or bad value names file and row."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found")
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    df = df[list(COLUMNS)].copy()
    for col, typ in COLUMNS.items():
        if typ is str:
            continue
        conv = pd.to_numeric(df[col], errors="coerce")
        bad = conv.isna() | ((conv % 1 != 0) if typ is int else False)
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise ValueError(f"{path}: row {i + 1}: column {col} = {df[col].iloc[i]!r} is not a valid {typ.__name__}")
        df[col] = conv.astype("int64" if typ is int else "float64")
    bad_split = ~df["split"].isin(SPLITS)
    if bad_split.any():
        i = int(bad_split.to_numpy().nonzero()[0][0])
        raise ValueError(f"{path}: row {i + 1}: split {df['split'].iloc[i]!r} is not one of {SPLITS}")
    return df


@contextlib.contextmanager
def atomic_dir(out: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``out``, on error it is removed.

    A killed or failed stage therefore never leaves a half-written output that looks complete.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
