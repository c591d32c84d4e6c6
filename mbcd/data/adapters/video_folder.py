"""``video_folder``: any folder ``<domain>/<class_name>/*.mp4`` (audio track in the mp4, flow computed later).

Classes are the sorted union of class folder names over the configured domains. The dataset has no split of
its own, so each clip's ``split`` is drawn from a hash of its id (20 % test), stable across runs and machines.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from mbcd.data.adapters.base import VIDEO_EXTS, Adapter
from mbcd.data.manifest import ManifestSet
from mbcd.registries import ADAPTERS
from mbcd.stages.common import StageError


def hashed_split(clip_id: str, test_fraction: float = 0.2) -> str:
    digest = int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:4], "little")
    return "test" if digest / 2**32 < test_fraction else "train"


@ADAPTERS.register("video_folder")
class VideoFolderAdapter(Adapter):
    """One clip per video file; whole-video clips (frame count and fps probed by the checks)."""

    def build(self, root: Path, domains: list[str], params: dict[str, Any]) -> ManifestSet:
        for domain in domains:
            if not (root / domain).is_dir():
                raise StageError(f"{root / domain}: domain folder not found")
        classes = sorted({p.name for d in domains for p in (root / d).iterdir() if p.is_dir()})
        mset = ManifestSet(classes=classes)
        for domain in domains:
            for label, cls in enumerate(classes):
                for path in sorted((root / domain / cls).glob("*")):
                    if path.suffix.lower() not in VIDEO_EXTS:
                        continue
                    rel = path.relative_to(root).as_posix()
                    clip_id = f"{domain}/{cls}/{path.stem}"
                    row = {
                        "clip_id": clip_id, "domain": domain, "split": hashed_split(clip_id), "label": label,
                        "class_name": cls, "rgb": rel, "flow": "", "audio": rel, "start_frame": 0,
                        "stop_frame": None, "start_sec": 0.0, "stop_sec": None, "fps": 0.0,
                    }  # fmt: skip
                    mset.add(row, f"{domain}/{cls}", rel)
        return mset
