"""Optical flow: read what a dataset ships (EPIC u/v JPEG folders, HAC ``x.mp4;y.mp4`` flow videos) or
compute it from the RGB frames with OpenCV (Farneback or dual TV-L1, ``extract.flow.method``).

Computed flow follows the public HAC data: grayscale consecutive frames, flow clipped to ``±bound`` and
quantised to uint8 as ``128 + 127 * f / bound``. It is computed on frames resized to the short side
``resize`` (so displacements are in resized pixels) and then centre-cropped. Shipped flow is already
quantised and is only resized and cropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mbcd.extract.base import EXTRACTORS, ClipError, Extractor
from mbcd.extract.frames import (
    centre_crop,
    decode_frames,
    is_video,
    open_video,
    read_jpegs,
    resize_crop,
    resize_short,
    sample_positions,
    segment,
)


def _farneback() -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 15, 3, 5, 1.2, 0)

    return flow


def _tvl1() -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    algo = cv2.optflow.DualTVL1OpticalFlow_create()
    return lambda prev, nxt: algo.calc(prev, nxt, None)


FLOW_METHODS: dict[str, Callable[[], Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    "farneback": _farneback,
    "tvl1": _tvl1,
}
"""method name -> factory of ``flow(prev_gray, next_gray) -> (H, W, 2) float32`` (one object per worker)."""


def quantise(flow: np.ndarray, bound: float) -> np.ndarray:
    """Float flow -> uint8 ``round(128 + 127 * clip(f, ±bound) / bound)`` (the cache contract)."""
    return np.rint(128.0 + 127.0 * np.clip(flow, -bound, bound) / bound).astype(np.uint8)


def dequantise(q: np.ndarray, bound: float) -> np.ndarray:
    """Inverse of :func:`quantise` (up to the quantisation step ``bound / 127``)."""
    return (q.astype(np.float32) - 128.0) * bound / 127.0


def pair_positions(start: int, stop: int, num: int, stride: int, file: str | Path) -> np.ndarray:
    """Sampled positions p with p + 1 still inside ``[start, stop)`` (flow needs two frames)."""
    sample_positions(start, stop, num, stride, file)  # the zero-length check, with the row's own numbers
    if stop - start < 2:
        raise ClipError(file, f"segment of {stop - start} frame is too short for computed flow (needs 2)")
    return sample_positions(start, stop - 1, num, stride, file)


def gray_pairs(frames: np.ndarray, resize: int) -> np.ndarray:
    """``(2T, H, W, 3)`` RGB frames -> ``(2T, h, w)`` grayscale frames with short side ``resize``."""
    return np.stack([resize_short(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), resize) for f in frames])


@EXTRACTORS.register("flow")
class FlowExtractor(Extractor):
    """Flow clip -> uint8 ``(num_frames, crop, crop, 2)``: shipped (EPIC u/v, HAC x/y videos) or computed."""

    modality = "flow"
    dtype = np.dtype(np.uint8)

    def __init__(self, cfg: dict[str, Any], root: str | Path) -> None:
        super().__init__(cfg, root)
        self.check_params(cfg, "extract.flow")
        if cfg["method"] not in FLOW_METHODS:
            raise ValueError(f"extract.flow.method: {cfg['method']!r}; expected one of {', '.join(FLOW_METHODS)}")
        self._flow: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.cfg["num_frames"], self.cfg["crop"], self.cfg["crop"], 2)

    def source_file(self, row: dict[str, str]) -> str:
        return (row.get("flow") or "").strip() or (row.get("rgb") or "")

    def extract(self, row: dict[str, str]) -> np.ndarray:
        rel = (row.get("flow") or "").strip()
        if not rel:
            return self.computed(row)
        if ";" in rel:
            return self.from_videos(row, rel)
        return self.from_folders(row, self.path(rel))

    # ------------------------------------------------------------------ computed from RGB
    def pair_frames(self, row: dict[str, str]) -> np.ndarray:
        """Decoded RGB frames ``(2T, H, W, 3)``: for each sampled position p, frames p and p+1."""
        rel = (row.get("rgb") or "").strip()
        src, num, stride = self.path(rel), self.cfg["num_frames"], self.cfg["stride"]
        if is_video(rel):
            vr = open_video(src)
            pos = pair_positions(*segment(row, len(vr)), num, stride, src)
            return decode_frames(vr, np.concatenate([pos, pos + 1]), src)
        if not src.is_dir():
            raise ClipError(src, "rgb source for computed flow is neither a video file nor a frame folder")
        pos = pair_positions(*segment(row), num, stride, src)
        return read_jpegs(src, np.concatenate([pos, pos + 1]))

    def flow_from_gray(self, gray: np.ndarray) -> np.ndarray:
        """``(2T, h, w)`` gray frames (first half p, second half p+1) -> quantised cropped ``(T, c, c, 2)``."""
        if self._flow is None:
            self._flow = FLOW_METHODS[self.cfg["method"]]()
        t = gray.shape[0] // 2
        flows = np.stack([self._flow(gray[i], gray[t + i]) for i in range(t)])
        q = quantise(flows, float(self.cfg["bound"]))
        return np.stack([centre_crop(f, self.cfg["crop"]) for f in q])

    def computed(self, row: dict[str, str]) -> np.ndarray:
        return self.flow_from_gray(gray_pairs(self.pair_frames(row), self.cfg["resize"]))

    # ------------------------------------------------------------------ shipped flow
    def from_videos(self, row: dict[str, str], rel: str) -> np.ndarray:
        """HAC: ``x.mp4;y.mp4`` grayscale flow videos, sampled like the RGB segment."""
        parts = [p for p in rel.split(";") if p.strip()]
        if len(parts) != 2:
            raise ClipError(rel, "flow videos must be given as 'x.mp4;y.mp4'")
        readers = [(self.path(p), open_video(self.path(p))) for p in parts]
        n = min(len(vr) for _, vr in readers)
        start, stop = segment(row, n)
        pos = sample_positions(start, min(stop, n), self.cfg["num_frames"], self.cfg["stride"], readers[0][0])
        comps = [decode_frames(vr, pos, path)[..., 0] for path, vr in readers]
        return resize_crop(np.stack(comps, axis=-1), self.cfg["resize"], self.cfg["crop"])

    def from_folders(self, row: dict[str, str], folder: Path) -> np.ndarray:
        """EPIC: ``u/`` and ``v/`` JPEG folders at half the RGB rate (start ``ceil(start_frame / 2)``)."""
        if not folder.is_dir():
            raise ClipError(folder, "flow folder not found")
        start, stop = segment(row)
        fstart = math.ceil(start / 2)
        fstop = fstart + (stop - start) // 2
        pos = sample_positions(fstart, fstop, self.cfg["num_frames"], self.cfg["stride"], folder)
        comps = [read_jpegs(folder / c, pos, gray=True) for c in ("u", "v")]
        return resize_crop(np.stack(comps, axis=-1), self.cfg["resize"], self.cfg["crop"])
