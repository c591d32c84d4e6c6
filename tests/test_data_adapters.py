"""Adapters read the toy EPIC-Kitchens, HAC and video-folder layouts into one manifest schema."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from mbcd import registries
from mbcd.data.manifest import COLUMNS, read_classes, read_manifest
from mbcd.stages import manifest
from mbcd.testing.layouts import (
    HAC_CLASSES,
    make_epic_layout,
    make_hac_layout,
    make_video_folder_layout,
    write_params,
)

EPIC = ["D1", "D2", "D3"]
HAC = ["human", "animal", "cartoon"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """Toy layouts of the three public formats and their manifests (strict)."""
    tmp = tmp_path_factory.mktemp("layouts")
    roots = {
        "epic": (make_epic_layout(tmp / "epic"), "epic_kitchens", EPIC),
        "hac": (make_hac_layout(tmp / "hac"), "hac", HAC),
        "vf": (make_video_folder_layout(tmp / "vf"), "video_folder", ["indoor", "outdoor"]),
    }
    params = write_params(
        tmp / "p.yaml", {k: {"adapter": a, "root": str(r), "domains": d} for k, (r, a, d) in roots.items()}
    )
    out = {}
    for name in roots:
        assert manifest.main(["--params", str(params), "--dataset", name, "--out", str(tmp / "m" / name)]) == 0
        out[name] = tmp / "m" / name
    return out


def test_registered() -> None:
    assert {"synth", "epic_kitchens", "hac", "video_folder"} <= set(registries.names("adapter"))


def test_identical_schemas(built: dict[str, Path]) -> None:
    first = {"epic": "D1", "hac": "human", "vf": "indoor"}
    frames = {n: read_manifest(p / f"{first[n]}.tsv") for n, p in built.items()}
    ref = frames["epic"]
    assert list(ref.columns) == list(COLUMNS)
    for name, df in frames.items():
        assert list(df.columns) == list(ref.columns), name
        assert df.dtypes.to_dict() == ref.dtypes.to_dict(), name
        assert len(df) > 0
    raw = {n: pd.read_csv(p / "rejects.tsv", sep="\t") for n, p in built.items()}
    assert all(
        list(r.columns) == ["clip_id", "domain", "file", "row", "reason", "stage"] and r.empty for r in raw.values()
    )


def test_epic_rows(built: dict[str, Path]) -> None:
    df = read_manifest(built["epic"] / "D2.tsv")
    pkl = pd.read_pickle(Path(json.loads((built["epic"] / "summary.json").read_text())["root"]) / "D2_train.pkl")
    first = df[df["split"] == "train"].iloc[0]
    src = pkl.iloc[0]
    assert first["start_frame"] == src["start_frame"] and first["stop_frame"] == src["stop_frame"] + 1
    assert first["rgb"] == f"rgb/train/D2/{src['video_id']}" and first["flow"] == f"flow/train/D2/{src['video_id']}"
    assert first["audio"] == f"rgb/train/D2/{src['video_id']}.wav"
    assert first["fps"] == 30 and first["class_name"] == src["verb"] and first["label"] == src["verb_class"]
    h, m, s = src["stop_timestamp"].split(":")
    assert first["stop_sec"] == pytest.approx(int(h) * 3600 + int(m) * 60 + float(s))
    root = Path(json.loads((built["epic"] / "summary.json").read_text())["root"])
    flow_first = math.ceil(first["start_frame"] / 2)  # half-rate flow: the segment's flow frames exist
    assert (root / first["flow"] / "u" / f"frame_{flow_first:010d}.jpg").is_file()
    assert sf.info(str(root / first["audio"])).samplerate == 16000
    assert read_classes(built["epic"] / "classes.tsv")[:3] == ["take", "put", "open"]


def test_hac_rows_and_classes_from_files(built: dict[str, Path]) -> None:
    df = read_manifest(built["hac"] / "human.tsv")
    row = df.iloc[0]
    assert row["rgb"] == "human/videos/human_train_000.mp4"
    assert row["flow"] == "human/flow/human_train_000_flow_x.mp4;human/flow/human_train_000_flow_y.mp4"
    assert row["audio"] == "human/audio/human_train_000.wav"
    assert (row["start_frame"], row["stop_frame"], row["fps"]) == (0, 16, 24.0)
    assert row["stop_sec"] == pytest.approx(16 / 24, abs=1e-4)
    assert read_classes(built["hac"] / "classes.tsv") == [f"class_{i}" for i in range(7)]  # never assumed
    assert sorted(df["split"].unique()) == ["test", "train"]


def test_hac_class_names_from_classes_file(tmp_path: Path) -> None:
    root = make_hac_layout(tmp_path / "hac", domains=("human", "animal"), clips_per_split=1)
    pd.DataFrame({"label": range(7), "class_name": HAC_CLASSES}).to_csv(root / "classes.tsv", sep="\t", index=False)
    params = write_params(
        tmp_path / "p.yaml", {"hac": {"adapter": "hac", "root": str(root), "domains": ["human", "animal"]}}
    )
    assert manifest.main(["--params", str(params), "--dataset", "hac", "--out", str(tmp_path / "m")]) == 0
    df = read_manifest(tmp_path / "m" / "human.tsv")
    assert df["class_name"].tolist() == [HAC_CLASSES[i] for i in df["label"]]


def test_video_folder_rows(built: dict[str, Path]) -> None:
    df = pd.concat([read_manifest(built["vf"] / f"{d}.tsv") for d in ("indoor", "outdoor")])
    assert len(df) == 8 and set(df["class_name"]) == {"jump", "wave"}
    assert (df["flow"] == "").all() and (df["audio"] == df["rgb"]).all()
    summary = json.loads((built["vf"] / "summary.json").read_text())
    assert summary["n_rows"] == 8 and summary["n_rejected"] == 0


def test_unknown_dataset_and_adapter(tmp_path: Path, capsys) -> None:
    params = write_params(
        tmp_path / "p.yaml", {"x": {"adapter": "hac", "root": str(tmp_path / "none"), "domains": ["a", "b"]}}
    )
    assert manifest.main(["--params", str(params), "--dataset", "y", "--out", str(tmp_path / "m")]) == 1
    assert "no datasets.y block" in capsys.readouterr().err
    assert manifest.main(["--params", str(params), "--dataset", "x", "--out", str(tmp_path / "m")]) == 1
    assert "datasets.x.root" in capsys.readouterr().err and not (tmp_path / "m").exists()
