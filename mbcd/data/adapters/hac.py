"""``hac``: the Human-Animal-Cartoon layout of SimMMDG.

``HAC_{train,test}_only_<domain>.csv`` (rows ``name.mp4,label``, no header; in the root or ``splits/``),
``<domain>/videos/<name>.mp4``, ``<domain>/flow/<name>_flow_{x,y}.mp4`` and ``<domain>/audio/<name>.wav``.
Labels are integers; class names come from an optional ``classes.tsv`` in the root and are otherwise
``class_<i>`` — the public index order is undocumented, so no name is assumed.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from mbcd.data.adapters.base import Adapter, parse_int, read_class_file
from mbcd.data.manifest import SPLITS, ManifestSet
from mbcd.registries import ADAPTERS
from mbcd.stages.common import StageError


def _split_file(root: Path, split: str, domain: str) -> Path:
    name = f"HAC_{split}_only_{domain}.csv"
    for folder in (root, root / "splits"):
        if (folder / name).is_file():
            return folder / name
    raise StageError(f"{root / name}: split file not found (looked in {root} and {root / 'splits'})")


def _read_rows(path: Path) -> list[tuple[int, str, str]]:
    """(line number, file name, label text) for every non-empty line."""
    with open(path, newline="") as fh:
        return [(i, r[0].strip(), r[1].strip() if len(r) > 1 else "") for i, r in enumerate(csv.reader(fh), 1) if r]


@ADAPTERS.register("hac")
class HACAdapter(Adapter):
    """Reads the split CSVs; clips are whole videos (frame count and fps probed by the checks)."""

    known_domains = ("human", "animal", "cartoon")

    def build(self, root: Path, domains: list[str], params: dict[str, Any]) -> ManifestSet:
        entries = [(d, s, _split_file(root, s, d)) for d in domains for s in SPLITS]
        parsed = {(d, s): _read_rows(path) for d, s, path in entries}
        classes = read_class_file(root)
        if classes is None:
            labels = [parse_int(lab) for rows in parsed.values() for _, _, lab in rows]
            top = max((lab for lab in labels if lab is not None and lab >= 0), default=-1)
            classes = [f"class_{i}" for i in range(top + 1)]
        mset = ManifestSet(classes=classes)
        for domain, split, path in entries:
            for line, name, label_text in parsed[(domain, split)]:
                stem = name[:-4] if name.endswith(".mp4") else name
                label = parse_int(label_text)
                row = {
                    "clip_id": f"{domain}/{stem}", "domain": domain, "split": split, "label": label,
                    "class_name": "", "rgb": f"{domain}/videos/{stem}.mp4",
                    "flow": f"{domain}/flow/{stem}_flow_x.mp4;{domain}/flow/{stem}_flow_y.mp4",
                    "audio": f"{domain}/audio/{stem}.wav", "start_frame": 0, "stop_frame": None,
                    "start_sec": 0.0, "stop_sec": None, "fps": 0.0,
                }  # fmt: skip
                if label is None:
                    mset.reject(row, path.name, line, f"label {label_text!r} is not an integer")
                else:
                    mset.add(row, path.name, line)
        return mset
