"""One loop for every modality: manifest rows -> worker pool of extractors -> cache writer.

Workers are processes (``fork`` where the platform has it, else ``spawn``), each building its own extractor
once and running OpenCV and torch single-threaded, so ``threads`` workers use ``threads`` cores. Results come
back in manifest order. A clip that fails is recorded with its file and reason and the rest continue; a worker
that dies outright (a decoder segfault) fails the job with a message instead of hanging it, as
``multiprocessing.Pool`` would.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from mbcd.data.manifest import COLUMNS
from mbcd.data.manifest import read_manifest as read_manifest_frame
from mbcd.extract.base import EXTRACTORS, ClipError, Extractor
from mbcd.extract.cache import CacheWriter, inputs_hash, is_up_to_date

MANIFEST_COLUMNS: tuple[str, ...] = tuple(COLUMNS)
"""The manifest contract's columns (docs/contracts.md), as :mod:`mbcd.data.manifest` defines them."""

_WORKER: Extractor | None = None


def read_manifest(path: str | Path) -> list[dict[str, str]]:
    """The manifest's rows as dicts of strings (what extractors and the inputs hash see).

    :func:`mbcd.data.manifest.read_manifest` checks columns and value types; on top, a clip_id may appear
    once only (it keys the cache's index). ValueError naming the file and the line.
    """
    try:
        frame = read_manifest_frame(path)
    except FileNotFoundError as err:
        raise ValueError(str(err)) from None
    rows: list[dict[str, str]] = [{k: str(v) for k, v in r.items()} for r in frame.to_dict("records")]
    seen: dict[str, int] = {}
    for line_no, row in enumerate(rows, start=2):
        clip_id = row["clip_id"].strip()
        if not clip_id:
            raise ValueError(f"{path}, line {line_no}: empty clip_id")
        if clip_id in seen:
            raise ValueError(f"{path}, line {line_no}: clip_id {clip_id!r} repeats line {seen[clip_id]}")
        seen[clip_id] = line_no
    return rows


def make_extractor(modality: str, cfg: dict[str, Any], root: str | Path) -> Extractor:
    """The registered extractor of ``modality`` (KeyError listing the registered ones)."""
    return EXTRACTORS.get(modality)(cfg, root)


def single_threaded() -> None:
    """OpenCV and torch on one thread in this process: parallelism comes from the workers, one core each."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _init_worker(modality: str, cfg: dict[str, Any], root: str) -> None:
    global _WORKER
    single_threaded()
    _WORKER = make_extractor(modality, cfg, root)


def _failure(extractor: Extractor, row: dict[str, str], err: Exception) -> dict[str, str]:
    """``{clip_id, file, reason}``; the file relative to the dataset root when it lies under it."""
    if isinstance(err, ClipError):
        file, reason = err.file, err.reason
    else:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        file, reason = extractor.source_file(row), f"{type(err).__name__}: {first}"[:300]
    try:
        file = str(Path(file).relative_to(extractor.root))
    except ValueError:
        pass
    return {"clip_id": row["clip_id"], "file": file, "reason": reason}


def extract_one(row: dict[str, str], extractor: Extractor | None = None) -> tuple[np.ndarray | None, dict | None]:
    """``(array, None)`` or ``(None, failure)`` for one row, with this process's extractor by default."""
    ext = extractor or _WORKER
    assert ext is not None, "worker not initialised"
    try:
        array = ext.extract(row)
        if array.shape != ext.shape:
            raise ClipError(ext.source_file(row), f"extracted shape {array.shape}, expected {ext.shape}")
        return array.astype(ext.dtype, copy=False), None
    except Exception as err:  # noqa: BLE001 - any per-clip problem is recorded, the domain goes on
        return None, _failure(ext, row, err)


def extract_chunk(rows: list[dict[str, str]]) -> list[tuple[np.ndarray | None, dict | None]]:
    """:func:`extract_one` over a few rows: one task per chunk keeps the pool's per-task cost small."""
    return [extract_one(row) for row in rows]


def chunk_size(n_rows: int, threads: int) -> int:
    """Rows per task: about 8 tasks per worker (load balance), at most 16 rows (progress, memory)."""
    return max(1, min(16, n_rows // (8 * threads)))


def iter_extract(
    modality: str, cfg: dict[str, Any], root: str | Path, rows: list[dict[str, str]], threads: int = 1
) -> Iterator[tuple[dict[str, str], np.ndarray | None, dict | None]]:
    """Yield ``(row, array, failure)`` in manifest order; ``threads > 1`` uses a process pool."""
    if threads <= 1 or len(rows) <= 1:
        extractor = make_extractor(modality, cfg, root)
        for row in rows:
            yield (row, *extract_one(row, extractor))
        return
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(
        min(threads, len(rows)), mp_context=mp.get_context(method), initializer=_init_worker,
        initargs=(modality, cfg, str(root)),
    )  # fmt: skip
    try:
        size = chunk_size(len(rows), threads)
        chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
        futures = [pool.submit(extract_chunk, chunk) for chunk in chunks]
        for chunk, future in zip(chunks, futures, strict=True):
            try:
                results = future.result()
            except BrokenProcessPool:  # a worker died (a decoder crash, the OOM killer): never hang
                ids = ", ".join(r["clip_id"] for r in chunk)
                raise ValueError(
                    f"a worker process died while extracting one of the clips {ids} or a clip queued with them;"
                    " rerun to retry, or remove the clip from the manifest"
                ) from None
            for row, (array, failure) in zip(chunk, results, strict=True):
                yield row, array, failure
    finally:  # normal end, an error, Ctrl-C or an abandoned generator: drop queued work, reap the workers
        pool.shutdown(wait=True, cancel_futures=True)


def extract_domain(
    *,
    modality: str,
    extract_params: dict[str, Any],
    rows: list[dict[str, str]],
    root: str | Path,
    out: str | Path,
    threads: int = 1,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Extract ``rows`` into the cache ``out`` unless it is up to date; returns the cache's report.

    With ``extract_params['strict']`` a failed clip raises ValueError listing every failure, and no cache is
    written (the temporary folder is removed).
    """
    cfg = extract_params[modality]
    used = {"strict": bool(extract_params.get("strict", False)), modality: cfg}
    digest = inputs_hash(modality, used, rows)
    out = Path(out)
    if is_up_to_date(out, digest):
        return json.loads((out / "report.json").read_text()) | {"skipped": True}
    probe = make_extractor(modality, cfg, root)  # validates params before any work
    t0, failures = time.perf_counter(), []
    with CacheWriter(out, len(rows), probe.shape, probe.dtype) as writer:
        bar = tqdm(total=len(rows), desc=f"extract {modality}", unit="clip", file=sys.stderr, disable=not progress)
        for row, array, failure in iter_extract(modality, cfg, root, rows, threads):
            if failure is None:
                writer.add(row["clip_id"], array)
            else:
                failures.append(failure)
            bar.update(1)
        bar.close()
        if failures and used["strict"]:
            listed = "; ".join(f"{f['clip_id']} ({f['file']}): {f['reason']}" for f in failures)
            raise ValueError(f"{len(failures)} clip(s) failed and extract.strict is true: {listed}")
        report = dict(meta or {}) | {
            "modality": modality, "params": used, "inputs_hash": digest, "shape": list(probe.shape),
            "dtype": probe.dtype.name, "n_ok": len(writer.clip_ids), "n_failed": len(failures),
            "failures": failures, "seconds": round(time.perf_counter() - t0, 3), "threads": threads,
        }  # fmt: skip
        writer.commit(report)
    return report
