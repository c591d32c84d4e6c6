"""The adapter interface and the per-row media checks every adapter's rows go through.

An adapter turns one source layout into a :class:`~mbcd.data.manifest.ManifestSet` (candidate rows with the
source file/row each came from, the class list, rows it already rejected). :func:`check_rows` then probes the
media cheaply (file exists, frame count and duration sufficient, audio track present, decodable container)
and fills what a layout does not state (frame count and fps of whole-video clips).
"""

from __future__ import annotations

import functools
import math
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import soundfile as sf

from mbcd.data.manifest import ManifestSet, Reject

VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".webm", ".mov")


class Adapter(ABC):
    """Source layout -> manifest rows. Subclasses are registered in ``registries.ADAPTERS`` by name."""

    known_domains: tuple[str, ...] | None = None
    """The dataset's fixed domain names (checked by the params loader); None = any names (synth, video folders)."""

    @abstractmethod
    def build(self, root: Path, domains: list[str], params: dict[str, Any]) -> ManifestSet:
        """Rows of ``domains`` under ``root`` (media paths relative to ``root``), classes and early rejects."""


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    fps: float
    has_audio: bool
    error: str = ""


@functools.lru_cache(maxsize=4096)
def probe_video(path: Path) -> VideoInfo:
    """Count video packets by demuxing (no decoding): catches unreadable and truncated containers cheaply."""
    try:
        with av.open(str(path)) as box:
            if not box.streams.video:
                return VideoInfo(0, 0.0, bool(box.streams.audio), "no video stream")
            stream = box.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            has_audio = bool(box.streams.audio)
            n = sum(1 for pkt in box.demux(stream) if pkt.size)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as err:
        return VideoInfo(0, 0.0, False, f"unreadable video ({type(err).__name__}: {err})")
    if n == 0:
        return VideoInfo(0, fps, has_audio, "unreadable video (no frames)")
    return VideoInfo(n, fps, has_audio)


@functools.lru_cache(maxsize=4096)
def probe_wav(path: Path) -> tuple[float, str]:
    """(duration in seconds, error)."""
    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError, sf.LibsndfileError) as err:
        return 0.0, f"unreadable audio ({err})"
    return info.frames / info.samplerate, ""


@functools.lru_cache(maxsize=4096)
def frame_indices(folder: Path) -> frozenset[int]:
    """Indices ``n`` of ``frame_##########.jpg`` files in a folder (empty if the folder is missing)."""
    if not folder.is_dir():
        return frozenset()
    out = set()
    for name in os.listdir(folder):
        if name.startswith("frame_") and name.endswith(".jpg") and name[6:-4].isdigit():
            out.add(int(name[6:-4]))
    return frozenset(out)


def _check_rgb(row: dict[str, Any], root: Path, min_frames: int) -> str:
    path = root / row["rgb"]
    if path.suffix.lower() in VIDEO_EXTS:
        if not path.is_file():
            return f"missing file {row['rgb']}"
        info = probe_video(path)
        if info.error:
            return f"{row['rgb']}: {info.error}"
        if row.get("stop_frame") is None:
            row["stop_frame"] = info.frames
        if not row.get("fps"):
            row["fps"] = info.fps
        if row.get("stop_sec") is None:
            row["stop_sec"] = row["stop_frame"] / row["fps"]
        if row["stop_frame"] > info.frames:
            return f"clip shorter than asked: {row['rgb']} has {info.frames} frames, row asks up to frame {row['stop_frame']}"
    else:
        have = frame_indices(path)
        if not have:
            return f"missing file {row['rgb']} (no frame_##########.jpg folder)"
        want = range(row["start_frame"], row["stop_frame"])
        lacking = [i for i in (want[0], want[-1]) if i not in have] if len(want) else []
        if lacking:
            return f"clip shorter than asked: {row['rgb']} lacks frame_{lacking[0]:010d}.jpg (row asks frames {want[0]}..{want[-1]})"
    n = row["stop_frame"] - row["start_frame"]
    if n < min_frames:
        return f"clip shorter than asked: {n} frames < extract.rgb.num_frames {min_frames} ({row['rgb']})"
    return ""


def _check_flow(row: dict[str, Any], root: Path) -> str:
    flow = row.get("flow") or ""
    if not flow:
        return ""
    if ";" in flow:
        for part in flow.split(";"):
            if not (root / part).is_file():
                return f"missing file {part}"
            info = probe_video(root / part)
            if info.error:
                return f"{part}: {info.error}"
        return ""
    first = math.ceil(row["start_frame"] / 2)
    last = first + max(1, (row["stop_frame"] - row["start_frame"]) // 2) - 1
    for comp in ("u", "v"):
        have = frame_indices(root / flow / comp)
        if not have:
            return f"missing file {flow}/{comp} (no flow frames)"
        for i in (first, last):
            if i not in have:
                return f"clip shorter than asked: {flow}/{comp} lacks frame_{i:010d}.jpg (flow at half rate)"
    return ""


def _check_audio(row: dict[str, Any], root: Path) -> str:
    audio = row.get("audio") or ""
    if not audio:
        return ""
    path = root / audio
    if not path.is_file():
        return f"missing file {audio}"
    if path.suffix.lower() in VIDEO_EXTS:
        info = probe_video(path)
        if info.error:
            return f"{audio}: {info.error}"
        return "" if info.has_audio else f"video without audio track: {audio}"
    duration, err = probe_wav(path)
    if err:
        return f"{audio}: {err}"
    if duration + 0.05 < float(row["stop_sec"]):
        return (
            f"clip shorter than asked: {audio} lasts {duration:.2f} s, segment ends at {float(row['stop_sec']):.2f} s"
        )
    return ""


def check_rows(mset: ManifestSet, root: Path, min_frames: int) -> tuple[list[dict[str, Any]], list[Reject]]:
    """Probe every candidate row; return (good rows, all rejects including the adapter's own)."""
    for cached in (probe_video, probe_wav, frame_indices):
        cached.cache_clear()  # files may have changed since an earlier call in this process
    good: list[dict[str, Any]] = []
    rejects = list(mset.rejects)
    n_classes = len(mset.classes)
    for row, (file, line) in zip(mset.rows, mset.sources, strict=True):
        label = row.get("label")
        if not isinstance(label, int) or not 0 <= label < n_classes:
            reason = f"label {label!r} outside class list (0..{n_classes - 1})"
        else:
            row["class_name"] = mset.classes[label]
            reason = _check_rgb(row, root, min_frames) or _check_flow(row, root) or _check_audio(row, root)
        if reason:
            rejects.append(Reject(str(row.get("clip_id", "")), str(row.get("domain", "")), file, line, reason))
        else:
            good.append(row)
    return good, rejects


def read_class_file(root: Path) -> list[str] | None:
    """An optional ``classes.tsv`` / ``classes.csv`` (``label``, ``class_name``) in the dataset root."""
    for name, sep in (("classes.tsv", "\t"), ("classes.csv", ",")):
        path = root / name
        if path.is_file():
            import pandas as pd

            df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
            if list(df.columns[:2]) != ["label", "class_name"] or list(df["label"]) != [str(i) for i in range(len(df))]:
                raise ValueError(f"{path}: expected columns label, class_name with labels 0..C-1 in order")
            return list(df["class_name"])
    return None


def parse_int(text: Any) -> int | None:
    """An integer label from a file cell, or None when it is not one."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return int(value) if value.is_integer() else None
