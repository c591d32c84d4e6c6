"""RGB frames: decode with decord (video files) or read EPIC JPEG folders, sample, resize, centre-crop.

Sampling is test-style and deterministic: ``num_frames`` positions ``stride`` apart, centred in the segment
``[start_frame, stop_frame)``; in a segment shorter than that span the last positions repeat the segment's
last frame. Frames are resized so the short side is ``resize`` and centre-cropped to ``crop`` x ``crop``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import decord
import numpy as np

from mbcd.extract.base import EXTRACTORS, ClipError, Extractor, optional_int

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")


def sample_positions(start: int, stop: int, num: int, stride: int, file: str | Path = "") -> np.ndarray:
    """``num`` frame numbers ``stride`` apart centred in ``[start, stop)``; short segments repeat the last."""
    length = stop - start
    if length <= 0:
        raise ClipError(file, f"zero-length segment (start_frame {start}, stop_frame {stop})")
    span = (num - 1) * stride + 1
    offset = max(0, (length - span) // 2)
    pos = start + offset + stride * np.arange(num)
    return np.minimum(pos, stop - 1)


def _unpad_rows(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """decord returns some widths (16, 24, 48, 72 ...) with padded rows; keep the ``width*3`` real bytes."""
    return frame.reshape(height, -1)[:, : width * 3].reshape(height, width, 3)


def open_video(path: Path) -> decord.VideoReader:
    """A single-threaded decord reader; an unreadable file is a :class:`ClipError` naming it."""
    if not path.is_file():
        raise ClipError(path, "video file not found")
    try:
        return decord.VideoReader(str(path), num_threads=1)
    except (decord.DECORDError, RuntimeError) as err:
        raise ClipError(path, f"cannot open video ({_short(err)})") from None


def _short(err: Exception) -> str:
    """decord's messages carry a C++ backtrace; keep the first meaningful line."""
    lines = [ln for ln in str(err).splitlines() if ln.strip() and "Stack trace" not in ln]
    return (lines[0] if lines else type(err).__name__)[-200:]


def decode_frames(vr: decord.VideoReader, positions: np.ndarray, path: Path) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 RGB frames at ``positions`` (0-based) with ``get_batch``."""
    n = len(vr)
    if int(positions.max()) >= n:
        raise ClipError(path, f"clip shorter than asked: video has {n} frames, needs frame {int(positions.max())}")
    try:
        return vr.get_batch(positions.tolist()).asnumpy()
    except (decord.DECORDError, RuntimeError) as err:
        if "size must exactly match" not in str(err):
            raise ClipError(path, f"decoding failed ({_short(err)})") from None
    try:  # decord's padded-row bug for some widths: per-frame access, then drop the padding
        first = vr[0].asnumpy()
        h, w = first.shape[0], first.shape[1]
        return np.stack([_unpad_rows(vr[int(p)].asnumpy(), h, w) for p in positions])
    except (decord.DECORDError, RuntimeError) as err:
        raise ClipError(path, f"decoding failed ({_short(err)})") from None


def read_jpegs(folder: Path, numbers: np.ndarray, gray: bool = False) -> np.ndarray:
    """EPIC ``frame_##########.jpg`` files by frame number: ``(T, H, W, 3)`` RGB or ``(T, H, W)`` gray."""
    out = []
    for num in numbers.tolist():
        file = folder / f"frame_{num:010d}.jpg"
        img = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
        if img is None:
            reason = "missing frame" if not file.exists() else "unreadable JPEG"
            raise ClipError(file, reason)
        out.append(img if gray else img[..., ::-1])
    return np.stack(out)


def resize_short(img: np.ndarray, short: int) -> np.ndarray:
    """Resize so the shorter side is ``short`` (area filter when shrinking, bilinear when enlarging)."""
    h, w = img.shape[:2]
    if min(h, w) == short:
        return img
    scale = short / min(h, w)
    size = (max(short, round(w * scale)), max(short, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(img, size, interpolation=interp)


def centre_crop(img: np.ndarray, crop: int) -> np.ndarray:
    """The central ``crop`` x ``crop`` window of an ``(H, W, ...)`` image."""
    h, w = img.shape[:2]
    top, left = (h - crop) // 2, (w - crop) // 2
    return img[top : top + crop, left : left + crop]


def resize_crop(frames: np.ndarray, resize: int, crop: int) -> np.ndarray:
    """Per-frame :func:`resize_short` + :func:`centre_crop` of ``(T, H, W, ...)`` frames."""
    return np.stack([centre_crop(resize_short(f, resize), crop) for f in frames])


def segment(row: dict[str, str], n_frames: int | None = None) -> tuple[int, int]:
    """The row's ``[start_frame, stop_frame)``; empty cells mean the whole video (``n_frames``)."""
    start = optional_int(row, "start_frame")
    stop = optional_int(row, "stop_frame")
    start = 0 if start is None else start
    if stop is None:
        if n_frames is None:
            raise ClipError("manifest column stop_frame", "empty, and the source has no frame count")
        stop = n_frames
    return start, stop


def is_video(rel: str) -> bool:
    return rel.strip().lower().endswith(VIDEO_SUFFIXES)


@EXTRACTORS.register("rgb")
class FrameExtractor(Extractor):
    """RGB clip -> uint8 ``(num_frames, crop, crop, 3)`` from an mp4 (decord) or an EPIC JPEG folder."""

    modality = "rgb"
    dtype = np.dtype(np.uint8)

    def __init__(self, cfg: dict[str, Any], root: str | Path) -> None:
        super().__init__(cfg, root)
        self.check_params(cfg, "extract.rgb")

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.cfg["num_frames"], self.cfg["crop"], self.cfg["crop"], 3)

    def raw_frames(self, row: dict[str, str]) -> np.ndarray:
        """The sampled frames at their decoded size, ``(T, H, W, 3)`` uint8."""
        rel = (row.get("rgb") or "").strip()
        if not rel:
            raise ClipError("manifest column rgb", f"clip {row.get('clip_id')} has no rgb source")
        src, num, stride = self.path(rel), self.cfg["num_frames"], self.cfg["stride"]
        if is_video(rel):
            vr = open_video(src)
            start, stop = segment(row, len(vr))
            return decode_frames(vr, sample_positions(start, stop, num, stride, src), src)
        if not src.is_dir():
            raise ClipError(src, "rgb source is neither a video file nor a frame folder")
        start, stop = segment(row)
        return read_jpegs(src, sample_positions(start, stop, num, stride, src))

    def extract(self, row: dict[str, str]) -> np.ndarray:
        return resize_crop(self.raw_frames(row), self.cfg["resize"], self.cfg["crop"])
