"""The extraction cache folder (docs/contracts.md): ``data.npy``, ``index.tsv``, ``report.json``.

:class:`CacheWriter` fills a temporary sibling folder and renames it into place only when complete, so a
killed or failed job leaves nothing that looks like a cache. :func:`open_cache` is what training uses: a
memory-mapped array and ``clip_id -> row``, checked for consistency.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

CACHE_FORMAT = 1
"""Bumped when the cache layout changes, so old caches are not mistaken for current ones."""


def inputs_hash(modality: str, params: dict[str, Any], rows: list[dict[str, str]]) -> str:
    """sha256 of what determines a cache: format, modality, the extract params used and the manifest rows."""
    blob = json.dumps({"format": CACHE_FORMAT, "modality": modality, "params": params, "rows": rows}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def is_up_to_date(out: Path, digest: str) -> bool:
    """True when ``out`` is a complete cache whose report records ``digest``."""
    report = out / "report.json"
    if not (report.is_file() and (out / "data.npy").is_file() and (out / "index.tsv").is_file()):
        return False
    try:
        return json.loads(report.read_text()).get("inputs_hash") == digest
    except json.JSONDecodeError:
        return False


def _new_array(file: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A writable ``.npy`` memory map of ``shape`` (an empty array is saved directly: empty files cannot be mapped)."""
    if shape[0] == 0:
        empty = np.zeros(shape, dtype)
        np.save(file, empty)
        return empty
    return np.lib.format.open_memmap(file, mode="w+", dtype=dtype, shape=shape)


class CacheWriter:
    """Write clips row by row into ``<out>.tmp-<pid>/`` and publish it as ``out`` on :meth:`commit`.

    Used as a context manager: leaving the block without ``commit`` (an exception, strict failure) removes
    the temporary folder. ``capacity`` rows are allocated; a cache with failures is compacted on commit.
    """

    def __init__(self, out: str | Path, capacity: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.out = Path(out)
        self.tmp = self.out.parent / f".{self.out.name}.tmp-{os.getpid()}"
        self.shape, self.dtype, self.capacity = tuple(shape), np.dtype(dtype), capacity
        self.clip_ids: list[str] = []
        self._data: np.memmap | None = None

    def __enter__(self) -> CacheWriter:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        for pattern in (f".{self.out.name}.tmp-*", f".{self.out.name}.old-*"):  # left by a killed job
            for stale in self.out.parent.glob(pattern):
                shutil.rmtree(stale, ignore_errors=True)
        self.tmp.mkdir()
        self._data = _new_array(self.tmp / "data.npy", (self.capacity, *self.shape), self.dtype)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._data = None
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def add(self, clip_id: str, array: np.ndarray) -> None:
        """Append one clip; its shape and dtype must be the cache's."""
        if array.shape != self.shape:
            raise ValueError(f"clip {clip_id}: array shape {array.shape}, cache expects {self.shape}")
        assert self._data is not None, "CacheWriter used outside its with-block"
        self._data[len(self.clip_ids)] = array.astype(self.dtype, copy=False)
        self.clip_ids.append(clip_id)

    def _compact(self) -> None:
        """Shrink ``data.npy`` to the rows written (when some clips failed)."""
        n = len(self.clip_ids)
        if n == self.capacity:
            return
        small = _new_array(self.tmp / "data.tmp.npy", (n, *self.shape), self.dtype)
        for i in range(0, n, 256):
            small[i : min(i + 256, n)] = self._data[i : min(i + 256, n)]
        if isinstance(small, np.memmap):
            small.flush()
        else:
            np.save(self.tmp / "data.tmp.npy", small)
        del small
        self._data = None
        os.replace(self.tmp / "data.tmp.npy", self.tmp / "data.npy")

    def commit(self, report: dict[str, Any]) -> None:
        """Write ``index.tsv`` and ``report.json`` and rename the folder into place (replacing an old cache)."""
        assert self._data is not None, "commit called twice or outside the with-block"
        if isinstance(self._data, np.memmap):
            self._data.flush()
        self._compact()
        self._data = None
        with open(self.tmp / "index.tsv", "w", newline="") as fh:
            writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
            writer.writerow(["row", "clip_id"])
            writer.writerows(enumerate(self.clip_ids))
        (self.tmp / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
        if self.out.exists():  # move the previous cache aside first: `out` is always absent or complete
            os.replace(self.out, old)
        os.replace(self.tmp, self.out)
        shutil.rmtree(old, ignore_errors=True)


def open_cache(path: str | Path) -> tuple[np.ndarray, dict[str, int]]:
    """A cache folder -> (memory-mapped ``data.npy``, ``{clip_id: row}``); ValueError naming the bad file."""
    path = Path(path)
    data_file, index_file, report_file = path / "data.npy", path / "index.tsv", path / "report.json"
    for file in (data_file, index_file):
        if not file.is_file():
            raise ValueError(f"{file}: missing; {path} is not a complete extraction cache")
    try:
        data = np.load(data_file, mmap_mode="r")
    except ValueError as err:
        raise ValueError(f"{data_file}: not a readable .npy array ({err})") from None
    index: dict[str, int] = {}
    with open(index_file, newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, None)
        if header != ["row", "clip_id"]:
            raise ValueError(f"{index_file}: header {header}, expected ['row', 'clip_id']")
        for line_no, fields in enumerate(reader, start=2):
            if len(fields) != 2 or not fields[0].isdigit():
                raise ValueError(f"{index_file}, line {line_no}: expected '<row>\\t<clip_id>', got {fields}")
            row, clip_id = int(fields[0]), fields[1]
            if clip_id in index:
                raise ValueError(f"{index_file}, line {line_no}: clip_id {clip_id!r} listed twice")
            if row >= data.shape[0]:
                raise ValueError(f"{index_file}, line {line_no}: row {row} but {data_file} has {data.shape[0]} rows")
            index[clip_id] = row
    if sorted(index.values()) != list(range(data.shape[0])):
        raise ValueError(f"{index_file}: lists {len(index)} clips, {data_file} has {data.shape[0]} rows")
    if report_file.is_file():
        n_ok = json.loads(report_file.read_text()).get("n_ok")
        if n_ok != data.shape[0]:
            raise ValueError(f"{report_file}: n_ok {n_ok} but {data_file} has {data.shape[0]} rows")
    return data, index
