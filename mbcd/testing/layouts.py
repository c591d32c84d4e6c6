"""Toy copies of the public dataset layouts (EPIC-Kitchens / MM-SADA, HAC, a plain video folder).

Each ``make_*_layout(root)`` writes a few real clips into ``root`` in the exact public format and returns the
dataset root, so adapters and extraction are tested against real pickles, CSVs, JPEG folders, mp4s and wavs.
They are deterministic and take about a second.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mbcd.data.media import make_video, write_wav

__all__ = [
    "EPIC_COLUMNS",
    "EPIC_DOMAINS",
    "HAC_CLASSES",
    "make_epic_layout",
    "make_hac_layout",
    "make_video",
    "make_video_folder_layout",
    "toy_frames",
    "toy_audio",
    "write_params",
    "write_wav",
    "epic_flow_start",
]

EPIC_COLUMNS = [
    "uid", "participant_id", "video_id", "narration", "start_timestamp", "stop_timestamp",
    "start_frame", "stop_frame", "verb", "verb_class",
]  # fmt: skip
EPIC_DOMAINS = {"D1": "P08", "D2": "P01", "D3": "P22"}
EPIC_VERBS = ["take", "put", "open", "close", "wash", "cut", "mix", "pour"]
HAC_CLASSES = ["sleeping", "watching tv", "eating", "drinking", "swimming", "running", "opening door"]


def toy_frames(n: int, size: int, label: int, seed: int) -> np.ndarray:
    """``(n, size, size, 3)`` uint8: a textured background and a square moving with a label-dependent speed."""
    rng = np.random.default_rng(seed)
    frames = np.empty((n, size, size, 3), np.uint8)
    frames[:] = rng.integers(40, 90, size=(1, size, size, 3), dtype=np.uint8)
    side = max(4, size // 4)
    for t in range(n):
        x = int((t * (label + 1)) % (size - side))
        frames[t, size // 3 : size // 3 + side, x : x + side] = (200, 60 + 20 * label, 30)
    return frames


def toy_audio(seconds: float, rate: int, label: int, seed: int) -> np.ndarray:
    """A label-dependent tone plus a little noise, float32 in [-1, 1]."""
    t = np.arange(int(round(seconds * rate))) / rate
    noise = np.random.default_rng(seed).normal(0, 0.02, t.size)
    return (0.4 * np.sin(2 * np.pi * (220 + 110 * label) * t) + noise).astype(np.float32)


def _timestamp(sec: float) -> str:
    """Seconds -> EPIC ``HH:MM:SS.xx``."""
    h, rem = divmod(sec, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h):02d}:{int(m):02d}:{s:05.2f}"


def _write_jpegs(folder: Path, frames: np.ndarray, first: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(frames):
        name = f"frame_{first + i:010d}.jpg"
        cv2.imwrite(str(folder / name), img if img.ndim == 2 else img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])


def _epic_video(root: Path, split: str, dom: str, video_id: str, n_frames: int, size: int, fps: int, seed: int):
    """One untrimmed EPIC video: RGB frames, u/v flow frames at half rate, one 16 kHz wav."""
    frames = toy_frames(n_frames, size, seed % 8, seed)
    _write_jpegs(root / "rgb" / split / dom / video_id, frames)
    n_flow = n_frames // 2
    rng = np.random.default_rng(seed + 1)
    for comp in ("u", "v"):
        flow = rng.integers(100, 156, size=(n_flow, size, size), dtype=np.uint8)
        _write_jpegs(root / "flow" / split / dom / video_id / comp, flow)
    write_wav(root / "rgb" / split / dom / f"{video_id}.wav", toy_audio(n_frames / fps, 16000, seed % 8, seed), 16000)


def make_epic_layout(
    root: str | Path,
    domains: tuple[str, ...] = ("D1", "D2", "D3"),
    clips_per_split: int = 3,
    clip_frames: int = 16,
    size: int = 32,
    fps: int = 30,
) -> Path:
    """MM-SADA layout: ``D{n}_{train,test}.pkl`` (pickled DataFrames with the public columns) in ``root``,
    ``rgb/{split}/D{n}/<video_id>/frame_##########.jpg``, ``flow/{split}/D{n}/<video_id>/{u,v}/...`` at half
    the frame rate and ``rgb/{split}/D{n}/<video_id>.wav`` (16 kHz mono, the whole untrimmed video).

    One untrimmed video per domain and split holds ``clips_per_split`` segments of ``clip_frames`` frames
    (1-indexed, inclusive stop frame, as in EPIC's annotations) separated by gaps of 4 frames.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    gap = 4
    n_frames = clips_per_split * (clip_frames + gap) + gap
    for d_i, dom in enumerate(domains):
        pid = EPIC_DOMAINS.get(dom, f"P{90 + d_i:02d}")
        for s_i, split in enumerate(("train", "test")):
            video_id = f"{pid}_{s_i + 1:02d}"
            _epic_video(root, split, dom, video_id, n_frames, size, fps, seed=100 * d_i + 10 * s_i)
            rows = []
            for c in range(clips_per_split):
                start = gap + c * (clip_frames + gap) + 1
                stop = start + clip_frames - 1
                verb_class = (c + d_i + s_i) % len(EPIC_VERBS)
                rows.append({
                    "uid": 1000 * (d_i + 1) + 100 * s_i + c,
                    "participant_id": pid,
                    "video_id": video_id,
                    "narration": f"{EPIC_VERBS[verb_class]} thing",
                    "start_timestamp": _timestamp((start - 1) / fps),
                    "stop_timestamp": _timestamp(stop / fps),
                    "start_frame": start,
                    "stop_frame": stop,
                    "verb": EPIC_VERBS[verb_class],
                    "verb_class": verb_class,
                })  # fmt: skip
            pd.DataFrame(rows, columns=EPIC_COLUMNS).to_pickle(root / f"{dom}_{split}.pkl")
    return root


def make_hac_layout(
    root: str | Path,
    domains: tuple[str, ...] = ("human", "animal", "cartoon"),
    clips_per_split: int = 3,
    frames: int = 16,
    size: int = 32,
    fps: int = 24,
    audio_rate: int = 16000,
) -> Path:
    """HAC layout: ``<domain>/videos/<name>.mp4``, ``<domain>/flow/<name>_flow_{x,y}.mp4`` (grayscale),
    ``<domain>/audio/<name>.wav`` and ``HAC_{train,test}_only_<domain>.csv`` (``name.mp4,label``, no header)
    in ``root``. Labels are integers into :data:`HAC_CLASSES`.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for d_i, dom in enumerate(domains):
        for s_i, split in enumerate(("train", "test")):
            lines = []
            for c in range(clips_per_split):
                label = (c + 2 * d_i + s_i) % len(HAC_CLASSES)
                name = f"{dom}_{split}_{c:03d}"
                seed = 1000 * d_i + 100 * s_i + c
                make_video(root / dom / "videos" / f"{name}.mp4", toy_frames(frames, size, label, seed), fps)
                rng = np.random.default_rng(seed)
                for comp in ("x", "y"):
                    flow = rng.integers(100, 156, size=(frames - 1, size, size), dtype=np.uint8)
                    make_video(root / dom / "flow" / f"{name}_flow_{comp}.mp4", flow, fps)
                write_wav(
                    root / dom / "audio" / f"{name}.wav", toy_audio(frames / fps, audio_rate, label, seed), audio_rate
                )
                lines.append(f"{name}.mp4,{label}")
            (root / f"HAC_{split}_only_{dom}.csv").write_text("\n".join(lines) + "\n")
    return root


def make_video_folder_layout(
    root: str | Path,
    domains: tuple[str, ...] = ("indoor", "outdoor"),
    classes: tuple[str, ...] = ("wave", "jump"),
    clips_per_class: int = 2,
    frames: int = 16,
    size: int = 32,
    fps: int = 16,
    audio_rate: int = 8000,
) -> Path:
    """A plain folder ``<domain>/<class_name>/<clip>.mp4`` (H.264 + AAC), the ``video_folder`` layout."""
    root = Path(root)
    for d_i, dom in enumerate(domains):
        for label, cls in enumerate(classes):
            for k in range(clips_per_class):
                seed = 100 * d_i + 10 * label + k
                audio = toy_audio(frames / fps, audio_rate, label, seed)
                make_video(root / dom / cls / f"{cls}_{k:03d}.mp4", toy_frames(frames, size, label, seed), fps,
                           audio=audio, audio_rate=audio_rate)  # fmt: skip
    return root


def epic_flow_start(start_frame: int) -> int:
    """EPIC flow index of an RGB start frame (flow is at half rate): ``ceil(start_frame / 2)``."""
    return math.ceil(start_frame / 2)


def write_params(path: str | Path, datasets: dict, base: str | Path = "params.yaml", **sections: dict) -> Path:
    """A params file for tests: the repository's ``params.yaml`` with ``datasets`` replaced (and the study's
    ``experiments.datasets`` pointed at them) and any top-level section deep-merged from ``sections``."""
    import yaml

    from mbcd.config import deep_merge

    base = Path(base)
    if not base.is_file():
        base = Path(__file__).resolve().parents[2] / "params.yaml"
    params = yaml.safe_load(base.read_text())
    params["datasets"] = datasets
    params["experiments"]["datasets"] = list(datasets)
    for key, value in sections.items():
        params[key] = deep_merge(params.get(key, {}), value)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path
