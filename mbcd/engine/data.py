"""Training and evaluation batches read from the extraction caches.

A :class:`ClipSet` holds, per configured modality, the cache rows of one split manifest (train, val or test)
gathered once into memory, so a batch is one vectorised ``np.take`` per modality instead of a Python loop over
clips. :class:`BatchLoader` yields whole batches (dicts keyed by modality, plus ``label`` and ``domain``) in an
order drawn from an explicit ``torch.Generator``; augmentation draws from the same generator, so an epoch is a
pure function of (data, seed, epoch) and a resumed run sees exactly the batches an uninterrupted one sees.

Under data-parallel training every rank draws the same *global* batch (indices and augmentation parameters)
and keeps its contiguous share, so two processes see the same samples, augmented the same way, as one.
"""

from __future__ import annotations

import csv
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mbcd.stages.common import StageError

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1, 1)
SPLIT_COLUMNS = ("clip_id", "domain", "label")
AUDIO_NOISE = 0.05  # data.md §1: uniform noise +-0.05
AUDIO_BAND = 9 / 257  # data.md §1: 9 of 257 frequency rows zeroed; scaled to the cache's F
IN_MEMORY_BYTES = 4 << 30  # a split's modality up to this size is read into memory once


@dataclass(frozen=True)
class SplitRows:
    """The rows of one split manifest that training needs."""

    path: Path
    clip_ids: list[str]
    domains: list[str]
    labels: np.ndarray  # int64 (N,)


def read_split(path: str | Path) -> SplitRows:
    """Read a split manifest (TSV with a header); errors name the file, the row and the reason."""
    path = Path(path)
    if not path.is_file():
        raise StageError(f"{path}: split manifest not found")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        missing = [c for c in SPLIT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise StageError(f"{path}: missing column(s) {', '.join(missing)}")
        ids, doms, labels = [], [], []
        for i, row in enumerate(reader, start=2):
            try:
                labels.append(int(row["label"]))
            except ValueError:
                raise StageError(f"{path}: row {i}: label {row['label']!r} is not an integer") from None
            ids.append(row["clip_id"])
            doms.append(row["domain"])
    if not ids:
        raise StageError(f"{path}: split manifest has no rows")
    return SplitRows(path, ids, doms, np.asarray(labels, dtype=np.int64))


def open_modality_cache(cache_dir: Path) -> tuple[np.ndarray, dict[str, int]]:
    """(memory-mapped data.npy, {clip_id: row}) of one cache folder (mbcd.extract.cache when available)."""
    if not (cache_dir / "data.npy").is_file() or not (cache_dir / "index.tsv").is_file():
        raise StageError(f"{cache_dir}: no extraction cache (data.npy and index.tsv expected)")
    try:
        from mbcd.extract.cache import open_cache
    except ImportError:
        open_cache = None
    if open_cache is not None:
        try:
            return open_cache(cache_dir)
        except ValueError as err:  # a malformed cache: the message names the file and line
            raise StageError(str(err)) from None
    data = np.load(cache_dir / "data.npy", mmap_mode="r")
    with open(cache_dir / "index.tsv", newline="") as fh:
        index = {r["clip_id"]: int(r["row"]) for r in csv.DictReader(fh, delimiter="\t")}
    return data, index


class ClipSet:
    """The clips of one split, per modality: one in-memory array, or per-domain memory maps when too large.

    A split whose modality fits in ``in_memory_bytes`` is copied once into a contiguous array in manifest
    order (a batch is then one ``np.take``); a larger one (full-size EPIC clips) stays memory-mapped and a
    batch reads, per domain, its rows in ascending order.
    """

    def __init__(self, split: SplitRows, caches: Path, modalities: tuple[str, ...], domain_names: list[str],
                 in_memory_bytes: int = IN_MEMORY_BYTES) -> None:  # fmt: skip
        self.split, self.modalities = split, modalities
        unknown = sorted(set(split.domains) - set(domain_names))
        if unknown:
            raise StageError(f"{split.path}: domain {unknown[0]!r} is not one of {', '.join(domain_names)}")
        self.labels = torch.from_numpy(split.labels)
        self.domains = torch.tensor([domain_names.index(d) for d in split.domains], dtype=torch.long)
        self.arrays: dict[str, np.ndarray] = {}
        self.mapped: dict[str, tuple[list[np.ndarray], np.ndarray, np.ndarray]] = {}
        for m in modalities:
            maps, src, rows = self._locate(Path(caches), m)
            if maps[0][0].nbytes * len(self) <= in_memory_bytes:
                self.arrays[m] = self._read(maps, src, rows, np.arange(len(self)))
            else:
                self.mapped[m] = (maps, src, rows)

    def _locate(self, caches: Path, modality: str) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """(one memory map per domain, domain position per clip, cache row per clip), checked."""
        maps: list[np.ndarray] = []
        where: dict[str, tuple[int, dict[str, int]]] = {}
        src, rows = np.empty(len(self), dtype=np.int64), np.empty(len(self), dtype=np.int64)
        for i, (clip, dom) in enumerate(zip(self.split.clip_ids, self.split.domains, strict=True)):
            if dom not in where:
                data, index = open_modality_cache(caches / dom / modality)
                if maps and data.shape[1:] != maps[0].shape[1:]:
                    raise StageError(
                        f"{caches / dom / modality}: clip shape {data.shape[1:]} differs from {maps[0].shape[1:]}"
                    )
                where[dom] = (len(maps), index)
                maps.append(data)
            pos, index = where[dom]
            if clip not in index:
                raise StageError(
                    f"{caches / dom / modality / 'index.tsv'}: clip {clip!r} (row {i + 2} of {self.split.path}) "
                    f"is not in the {modality} cache"
                )
            src[i], rows[i] = pos, index[clip]
        return maps, src, rows

    @staticmethod
    def _read(maps: list[np.ndarray], src: np.ndarray, rows: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Clips ``idx`` (split positions) from the memory maps: one sorted fancy read per domain."""
        out = np.empty((len(idx),) + maps[0].shape[1:], dtype=maps[0].dtype)
        for pos in np.unique(src[idx]):
            sel = np.flatnonzero(src[idx] == pos)
            order = np.argsort(rows[idx[sel]], kind="stable")
            out[sel[order]] = maps[pos][rows[idx[sel[order]]]]
        return out

    def take(self, modality: str, idx: np.ndarray) -> np.ndarray:
        """Raw cache clips (uint8 / float16, cache layout) at split positions ``idx``."""
        if modality in self.arrays:
            return np.take(self.arrays[modality], idx, axis=0)
        return self._read(*self.mapped[modality], np.asarray(idx))

    def __len__(self) -> int:
        return len(self.split.clip_ids)

    def batch(self, idx: np.ndarray, aug: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The batch of rows ``idx`` as float tensors in the contract's layout; ``aug`` from :func:`draw_augment`.

        Crops and flips run on the uint8 clips (a quarter of the float bytes), before conversion.
        """
        out: dict[str, torch.Tensor] = {}
        for m in self.modalities:
            raw = self.take(m, idx)
            if aug is not None and m in PAD_FILL:
                raw = crop_flip(raw, aug, PAD_FILL[m])
            out[m] = TO_TENSOR[m](torch.from_numpy(raw))
            if aug is not None and m in AFTER_CONVERSION:
                out[m] = AFTER_CONVERSION[m](out[m], aug)
        t = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        out["label"] = self.labels[t]
        out["domain"] = self.domains[t]
        return out


def _rgb(x: torch.Tensor) -> torch.Tensor:
    """uint8 (B,T,H,W,3) -> ImageNet-normalised float (B,3,T,H,W), contiguous.

    One layout change, then an in-place affine map per channel: much faster on CPU than broadcasting a
    (1,3,1,1,1) mean/std over a permuted tensor.
    """
    y = x.permute(0, 4, 1, 2, 3).float().contiguous()
    for c, (mean, std) in enumerate(
        zip(IMAGENET_MEAN.flatten().tolist(), IMAGENET_STD.flatten().tolist(), strict=True)
    ):
        y[:, c].mul_(1.0 / (255.0 * std)).sub_(mean / std)
    return y


def _flow(x: torch.Tensor) -> torch.Tensor:
    """uint8 (B,T,H,W,2) -> (x-128)/128 float (B,2,T,H,W), contiguous."""
    return x.permute(0, 4, 1, 2, 3).float().contiguous().sub_(128.0).div_(128.0)


def _audio(x: torch.Tensor) -> torch.Tensor:
    """float16 (B,F,T) -> float (B,1,F,T)."""
    return x.float().unsqueeze(1)


TO_TENSOR = {"rgb": _rgb, "flow": _flow, "audio": _audio}
PAD_FILL = {"rgb": 0, "flow": 128}  # padding of the random crop: black frames, zero motion


def draw_augment(n: int, gen: torch.Generator, shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Augmentation parameters of a (global) batch of ``n`` clips, drawn from ``gen`` in a fixed order.

    Visual modalities share one crop offset (as a fraction of the padding) and one flip per clip, so rgb and
    flow stay aligned; audio gets its noise and the start of its zeroed frequency band.
    """
    aug = {"flip": torch.rand(n, generator=gen) < 0.5, "shift": torch.rand(n, 2, generator=gen)}
    if "audio" in shapes:
        _, freq, frames = shapes["audio"]
        aug["noise"] = (torch.rand(n, 1, freq, frames, generator=gen) * 2 - 1) * AUDIO_NOISE
        aug["band"] = torch.rand(n, generator=gen)
    return aug


def crop_flip(x: np.ndarray, aug: dict[str, torch.Tensor], fill: int) -> np.ndarray:
    """Random crop of a clip padded by 1/8 of its size with ``fill``, then a horizontal flip, per clip.

    ``x`` is (B,T,H,W,C) as stored in the cache; the output pixel (r, c) is input (r+dy, c+dx) with
    dy, dx in [-H/8, H/8] (``fill`` outside), mirrored when the clip's flip is set. Same offsets and flips
    for every visual modality of a clip.
    """
    b, _, h, w, _ = x.shape
    ph, pw = max(1, h // 8), max(1, w // 8)
    dys = ((aug["shift"][:, 0] * (2 * ph + 1)).long().clamp(max=2 * ph) - ph).tolist()
    dxs = ((aug["shift"][:, 1] * (2 * pw + 1)).long().clamp(max=2 * pw) - pw).tolist()
    flips = aug["flip"].tolist()
    out = np.full_like(x, fill)
    for i in range(b):
        dy, dx = dys[i], dxs[i]
        r0, r1, c0, c1 = max(0, -dy), min(h, h - dy), max(0, -dx), min(w, w - dx)
        src = x[i, :, r0 + dy : r1 + dy, c0 + dx : c1 + dx]
        if flips[i]:
            out[i, :, r0:r1, w - c1 : w - c0] = src[:, :, ::-1]
        else:
            out[i, :, r0:r1, c0:c1] = src
    return out


def _negate_flipped_flow(x: torch.Tensor, aug: dict[str, torch.Tensor]) -> torch.Tensor:
    """A mirrored clip moves the other way: negate the horizontal flow channel of flipped clips."""
    flipped = aug["flip"].nonzero().flatten()
    x[flipped, 0] = -x[flipped, 0]
    return x


def _audio_aug(x: torch.Tensor, aug: dict[str, torch.Tensor]) -> torch.Tensor:
    """Uniform noise and one random band of frequency rows zeroed (data.md §1); x is (B,1,F,T)."""
    freq = x.shape[2]
    width = max(1, round(freq * AUDIO_BAND))
    start = (aug["band"] * (freq - width + 1)).long().clamp(max=freq - width)
    rows = torch.arange(freq)[None]
    keep = ~((rows >= start[:, None]) & (rows < start[:, None] + width))  # (B,F)
    return (x + aug["noise"]) * keep.view(-1, 1, freq, 1)


AFTER_CONVERSION = {"flow": _negate_flipped_flow, "audio": _audio_aug}


def slice_aug(aug: dict[str, torch.Tensor], lo: int, hi: int) -> dict[str, torch.Tensor]:
    return {k: v[lo:hi] for k, v in aug.items()}


class BatchLoader:
    """Whole batches of a :class:`ClipSet`; shuffled, augmented and sharded over ranks when training."""

    def __init__(
        self, clips: ClipSet, batch_size: int, train: bool, augment: bool = False, rank: int = 0, world: int = 1
    ):
        if batch_size % world:
            raise StageError(f"train.batch_size: {batch_size} is not divisible by the {world} data-parallel ranks")
        self.clips, self.batch_size, self.train, self.augment = clips, batch_size, train, augment
        self.rank, self.world = rank, world
        self.shapes = {
            m: tuple(TO_TENSOR[m](torch.from_numpy(clips.take(m, np.arange(1)))).shape[1:]) for m in clips.modalities
        }

    def __len__(self) -> int:
        n = len(self.clips)
        if self.train:
            return max(1, n // self.batch_size)
        return -(-n // self.batch_size)

    def epoch(self, gen: torch.Generator | None = None) -> Iterator[dict[str, torch.Tensor]]:
        """One pass. Training drops the last partial batch (BatchNorm needs > 1 sample) and needs ``gen``."""
        n = len(self.clips)
        if not self.train:
            for lo in range(0, n, self.batch_size):
                yield self.clips.batch(np.arange(lo, min(n, lo + self.batch_size)))
            return
        if gen is None:
            raise ValueError("a training epoch needs a torch.Generator")
        order = torch.randperm(n, generator=gen).numpy()
        size = min(self.batch_size, n)
        share = size // self.world
        for b in range(len(self)):
            idx = order[b * size : (b + 1) * size]
            aug = draw_augment(size, gen, self.shapes) if self.augment else None
            lo, hi = self.rank * share, (self.rank + 1) * share
            yield self.clips.batch(idx[lo:hi], slice_aug(aug, lo, hi) if aug else None)


def prefetch(batches: Iterator[dict[str, torch.Tensor]], depth: int) -> Iterator[dict[str, torch.Tensor]]:
    """Prepare up to ``depth`` batches ahead in a background thread (``depth`` 0: in the caller's thread).

    Gathering, conversion and augmentation release the GIL in numpy/torch, so they overlap the training
    step. Only this thread advances the loader (and its generator), so the batches and their order are
    exactly those of the plain iterator; an exception in the loader is re-raised in the caller.
    """
    if depth <= 0:
        yield from batches
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: object) -> bool:
        """Hand ``item`` over unless the consumer has gone; False when it has."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in batches:
                if not put(item):
                    return
            put(done)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer
            put(err)

    thread = threading.Thread(target=work, name="mbcd-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
