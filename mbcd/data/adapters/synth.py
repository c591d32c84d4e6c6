"""``synth``: the bundled benchmark written by ``mbcd generate`` (``labels.tsv`` + ``data_card.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from mbcd.data.adapters.base import Adapter, parse_int
from mbcd.data.manifest import ManifestSet
from mbcd.registries import ADAPTERS
from mbcd.stages.common import StageError

LABEL_COLUMNS = ["clip_id", "domain", "split", "label", "class_name", "frames", "fps", "path"]


@ADAPTERS.register("synth")
class SynthAdapter(Adapter):
    """One mp4 per clip (H.264 video + AAC audio); flow is computed by the extraction stage."""

    def build(self, root: Path, domains: list[str], params: dict[str, Any]) -> ManifestSet:
        labels, card = root / "labels.tsv", root / "data_card.json"
        for path in (labels, card):
            if not path.is_file():
                raise StageError(f"{path}: not found; run `mbcd generate` first")
        classes = list(json.loads(card.read_text())["classes"])
        df = pd.read_csv(labels, sep="\t", dtype=str, keep_default_na=False)
        missing = [c for c in LABEL_COLUMNS if c not in df.columns]
        if missing:
            raise StageError(f"{labels}: missing column(s) {', '.join(missing)}")
        mset = ManifestSet(classes=classes)
        for i, rec in enumerate(df.to_dict("records"), start=1):
            if rec["domain"] not in domains:
                continue
            frames, fps = parse_int(rec["frames"]), float(rec["fps"] or 0)
            row = {
                "clip_id": rec["clip_id"], "domain": rec["domain"], "split": rec["split"],
                "label": parse_int(rec["label"]), "class_name": rec["class_name"],
                "rgb": rec["path"], "flow": "", "audio": rec["path"],
                "start_frame": 0, "stop_frame": frames, "start_sec": 0.0,
                "stop_sec": (frames or 0) / fps if fps else None, "fps": fps,
            }  # fmt: skip
            mset.add(row, labels.name, i)
        return mset
