"""``epic_kitchens``: the MM-SADA subset of EPIC-Kitchens-55 (domains D1/D2/D3).

``D{n}_{train,test}.pkl`` (in the root or ``splits/``) are pickled DataFrames with the public columns; they are
read here once and nothing downstream reads a pickle. RGB is ``rgb/{split}/D{n}/<video_id>/frame_*.jpg``
(EPIC frame numbers are 1-based and the annotation's stop frame is inclusive, so the manifest's exclusive
``stop_frame`` is ``stop_frame + 1``); flow is ``flow/{split}/D{n}/<video_id>`` with ``u/`` and ``v/`` at half
rate (extraction starts at ``ceil(start_frame / 2)``); audio is one wav per untrimmed video,
``rgb/{split}/D{n}/<video_id>.wav``, cut by the timestamps.
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from mbcd.data.adapters.base import Adapter, read_class_file
from mbcd.data.manifest import SPLITS, ManifestSet
from mbcd.registries import ADAPTERS
from mbcd.stages.common import StageError

PKL_COLUMNS = [
    "uid", "participant_id", "video_id", "narration", "start_timestamp", "stop_timestamp",
    "start_frame", "stop_frame", "verb", "verb_class",
]  # fmt: skip


def parse_timestamp(text: str) -> float:
    """``HH:MM:SS.xx`` -> seconds; ValueError naming the text otherwise."""
    parts = str(text).split(":")
    if len(parts) != 3:
        raise ValueError(f"timestamp {text!r} is not HH:MM:SS.xx")
    h, m, s = parts
    return int(h) * 3600 + int(m) * 60 + float(s)


def _pickle(root: Path, domain: str, split: str) -> Path:
    name = f"{domain}_{split}.pkl"
    for folder in (root, root / "splits"):
        if (folder / name).is_file():
            return folder / name
    raise StageError(f"{root / name}: split pickle not found (looked in {root} and {root / 'splits'})")


def _load(path: Path) -> pd.DataFrame | str:
    """The pickle's DataFrame, or the reason it cannot be used (missing columns, not a DataFrame)."""
    try:
        df = pd.read_pickle(path)
    except Exception as err:  # a corrupt pickle can raise almost anything
        return f"unreadable pickle ({type(err).__name__}: {err})"
    if not isinstance(df, pd.DataFrame):
        return f"expected a pickled pandas DataFrame, got {type(df).__name__}"
    missing = [c for c in PKL_COLUMNS if c not in df.columns]
    return f"missing column(s) {', '.join(missing)}" if missing else df.reset_index(drop=True)


def _class_list(frames: list[pd.DataFrame]) -> list[str]:
    """verb_class -> the verb most rows give it; classes 0..max (a gap gets ``class_<i>``)."""
    votes: dict[int, Counter] = {}
    for df in frames:
        for cls, verb in zip(df["verb_class"], df["verb"], strict=True):
            votes.setdefault(int(cls), Counter())[str(verb)] += 1
    top = max(votes, default=-1)
    return [votes[i].most_common(1)[0][0] if i in votes else f"class_{i}" for i in range(top + 1)]


@ADAPTERS.register("epic_kitchens")
class EpicKitchensAdapter(Adapter):
    """Segments of untrimmed videos: frame folders, half-rate flow folders, one wav per video."""

    known_domains = ("D1", "D2", "D3")  # MM-SADA: P08, P01, P22

    def build(self, root: Path, domains: list[str], params: dict[str, Any]) -> ManifestSet:
        loaded = {(d, s): (_pickle(root, d, s), None) for d in domains for s in SPLITS}
        loaded = {key: (path, _load(path)) for key, (path, _) in loaded.items()}
        frames = [df for _, df in loaded.values() if isinstance(df, pd.DataFrame)]
        classes = read_class_file(root) or _class_list(frames)
        mset = ManifestSet(classes=classes)
        rows: list[tuple[dict[str, Any], str, int]] = []
        for (domain, split), (path, df) in loaded.items():
            if isinstance(df, str):
                mset.reject({"domain": domain}, path.name, "", df)
                continue
            for i, rec in enumerate(df.to_dict("records")):
                rows.append((self._row(rec, domain, split, classes, mset, path.name, i), path.name, i))
        good = [(r, f, i) for r, f, i in rows if r is not None]
        fps = self._fps([r for r, _, _ in good])
        for row, file, i in good:
            row["fps"] = fps
            mset.add(row, file, i)
        return mset

    @staticmethod
    def _row(rec: dict, domain: str, split: str, classes: list[str], mset: ManifestSet, file: str, i: int):
        clip_id = f"{domain}_{split}_{rec['uid']}"
        base = {"clip_id": clip_id, "domain": domain}
        try:
            start_sec, stop_sec = parse_timestamp(rec["start_timestamp"]), parse_timestamp(rec["stop_timestamp"])
            start, stop, label = int(rec["start_frame"]), int(rec["stop_frame"]) + 1, int(rec["verb_class"])
        except (TypeError, ValueError) as err:
            mset.reject(base, file, i, f"bad value: {err}")
            return None
        if 0 <= label < len(classes) and str(rec["verb"]) != classes[label]:
            mset.reject(base, file, i, f"verb {rec['verb']!r} disagrees with class list ({label} = {classes[label]!r})")
            return None
        video = f"{split}/{domain}/{rec['video_id']}"
        return {
            **base, "split": split, "label": label, "class_name": str(rec["verb"]),
            "rgb": f"rgb/{video}", "flow": f"flow/{video}", "audio": f"rgb/{video}.wav",
            "start_frame": start, "stop_frame": stop, "start_sec": start_sec, "stop_sec": stop_sec, "fps": 0.0,
        }  # fmt: skip

    @staticmethod
    def _fps(rows: list[dict[str, Any]]) -> float:
        """The RGB frame rate implied by frame numbers and timestamps (median over segments, rounded)."""
        ratios = [
            (r["stop_frame"] - r["start_frame"]) / (r["stop_sec"] - r["start_sec"])
            for r in rows
            if r["stop_sec"] > r["start_sec"]
        ]
        return float(round(statistics.median(ratios))) if ratios else 60.0
