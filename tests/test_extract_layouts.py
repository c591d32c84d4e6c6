"""``mbcd extract`` on each source layout x each modality: plain video files (mp4 + AAC), EPIC JPEG folders
(RGB + u/v flow + untrimmed wav) and HAC (mp4 + x/y flow videos + wav), all written as real files."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
import yaml

from mbcd.extract import open_cache
from mbcd.extract.runner import MANIFEST_COLUMNS
from mbcd.stages import extract as stage
from mbcd.testing.layouts import make_epic_layout, make_hac_layout, make_video_folder_layout

torch.set_num_threads(1)
cv2.setNumThreads(1)

SMALL = {
    "strict": False,
    "rgb": {"num_frames": 4, "stride": 2, "resize": 32, "crop": 24},
    "flow": {"method": "farneback", "num_frames": 4, "stride": 2, "bound": 20.0, "resize": 32, "crop": 24},
    "audio": {"sample_rate": 8000, "seconds": 1.0, "features": "stft", "window": 256, "overlap": 176, "n_mels": 32},
}
SHAPES = {"rgb": (4, 24, 24, 3), "flow": (4, 24, 24, 2), "audio": (129, 1 + (8000 - 256) // 80)}


def write_manifest(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A contract manifest (missing cells empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, MANIFEST_COLUMNS, delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows([{k: r.get(k, "") for k in MANIFEST_COLUMNS} for r in rows])
    return path


def write_params(tmp: Path, params: dict[str, Any], name: str, root: Path, domain: str, **extract: Any) -> Path:
    params = dict(params)
    params["datasets"] = {name: {"adapter": "video_folder", "root": str(root), "domains": [domain, "other"]}}
    params["experiments"] = dict(params["experiments"], datasets=[name])
    params["extract"] = json.loads(json.dumps(SMALL)) | extract
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def video_folder_rows(root: Path) -> list[dict[str, Any]]:
    make_video_folder_layout(root, domains=("indoor",), classes=("wave", "jump"), clips_per_class=1)
    return [
        {"clip_id": f"{c}_000", "domain": "indoor", "split": "train", "label": i, "class_name": c,
         "rgb": f"indoor/{c}/{c}_000.mp4", "flow": "", "audio": f"indoor/{c}/{c}_000.mp4",
         "start_frame": 0, "stop_frame": 16, "start_sec": 0.0, "stop_sec": 1.0, "fps": 16}
        for i, c in enumerate(("wave", "jump"))
    ]  # fmt: skip


def epic_rows(root: Path) -> list[dict[str, Any]]:
    make_epic_layout(root, domains=("D1",), clips_per_split=2, clip_frames=16)
    rows = []
    for c in range(2):  # the layout's segments: start 5 + 20c (1-based), 16 frames
        start = 5 + 20 * c
        rows.append({"clip_id": f"D1_{c}", "domain": "D1", "split": "train", "label": c, "class_name": "x",
                     "rgb": "rgb/train/D1/P08_01", "flow": "flow/train/D1/P08_01",
                     "audio": "rgb/train/D1/P08_01.wav", "start_frame": start, "stop_frame": start + 16,
                     "start_sec": (start - 1) / 30, "stop_sec": (start + 15) / 30, "fps": 30})  # fmt: skip
    return rows


def hac_rows(root: Path) -> list[dict[str, Any]]:
    make_hac_layout(root, domains=("human",), clips_per_split=2)
    rows = []
    for c in range(2):
        name = f"human_train_{c:03d}"
        rows.append({"clip_id": name, "domain": "human", "split": "train", "label": c, "class_name": "x",
                     "rgb": f"human/videos/{name}.mp4",
                     "flow": f"human/flow/{name}_flow_x.mp4;human/flow/{name}_flow_y.mp4",
                     "audio": f"human/audio/{name}.wav", "start_frame": 0, "stop_frame": 16,
                     "start_sec": 0.0, "stop_sec": 16 / 24, "fps": 24})  # fmt: skip
    return rows


LAYOUTS = {"video_folder": video_folder_rows, "epic": epic_rows, "hac": hac_rows}


def run_layout(tmp_path: Path, params: dict, layout: str, modality: str, threads: int = 1) -> tuple:
    root = tmp_path / "root"
    rows = LAYOUTS[layout](root)
    domain = rows[0]["domain"]
    manifest = write_manifest(tmp_path / "m" / f"{domain}.tsv", rows)
    p = write_params(tmp_path, params, "ds", root, domain)
    out = tmp_path / "cache" / modality
    argv = ["--params", str(p), "--dataset", "ds", "--domain", domain, "--modality", modality,
            "--manifest", str(manifest), "--out", str(out), "--threads", str(threads), "--quiet"]  # fmt: skip
    assert stage.main(argv) == 0
    data, index = open_cache(out)
    return root, rows, data, index, json.loads((out / "report.json").read_text())


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("modality", ["rgb", "flow", "audio"])
def test_each_layout_and_modality(tmp_path: Path, params: dict, layout: str, modality: str) -> None:
    root, rows, data, index, report = run_layout(tmp_path, params, layout, modality)
    assert report["n_failed"] == 0, report["failures"]
    assert data.shape == (len(rows), *SHAPES[modality])
    assert list(index) == [r["clip_id"] for r in rows]
    assert report["dataset"] == "ds" and report["modality"] == modality and report["n_ok"] == len(rows)
    if modality == "audio":
        x = data.astype(np.float32)
        assert data.dtype == np.float16 and np.allclose(x.mean(axis=(1, 2)), 0, atol=1e-2)
    else:
        assert data.dtype == np.uint8 and data.std() > 1  # real content, not a constant


def test_epic_rgb_reads_the_right_jpegs(tmp_path: Path, params: dict) -> None:
    """Clip 1 (frames 25..40): positions 29, 31, 33, 35 -> frame_0000000029.jpg ... (resized 32, crop 24)."""
    root, _, data, index, _ = run_layout(tmp_path, params, "epic", "rgb")
    folder = root / "rgb/train/D1/P08_01"
    want = [cv2.imread(str(folder / f"frame_{n:010d}.jpg"))[4:28, 4:28, ::-1] for n in (29, 31, 33, 35)]
    np.testing.assert_array_equal(data[index["D1_1"]], np.stack(want))


def test_shipped_flow_keeps_its_values(tmp_path: Path, params: dict) -> None:
    """EPIC u/v JPEGs and HAC flow videos hold values 100..155 (mean ~128); the cache keeps them."""
    for layout in ("epic", "hac"):
        _, _, data, _, _ = run_layout(tmp_path / layout, params, layout, "flow")
        assert 120 < data.mean() < 136 and data.min() >= 80 and data.max() <= 175, layout


def test_two_workers_give_the_same_cache(tmp_path: Path, params: dict) -> None:
    one = run_layout(tmp_path / "one", params, "hac", "flow", threads=1)[2]
    two = run_layout(tmp_path / "two", params, "hac", "flow", threads=2)[2]
    np.testing.assert_array_equal(np.asarray(one), np.asarray(two))


def test_epic_flow_computed_from_jpegs_when_no_flow_folder(tmp_path: Path) -> None:
    """An EPIC row with an empty flow cell: flow computed (Farneback) from the RGB JPEGs; the toy square moves."""
    from mbcd.extract import extract_domain

    rows = [dict(r, flow="") for r in epic_rows(tmp_path / "root")]
    rows = [{k: str(v) for k, v in r.items()} for r in rows]
    report = extract_domain(modality="flow", extract_params=SMALL, rows=rows, root=tmp_path / "root",
                            out=tmp_path / "c", progress=False)  # fmt: skip
    assert report["n_failed"] == 0, report["failures"]
    data, _ = open_cache(tmp_path / "c")
    assert data.shape == (2, *SHAPES["flow"]) and (data != 128).mean() > 0.01  # motion somewhere
