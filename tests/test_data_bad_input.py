"""Bad input: every offending row reported (file, row, reason) in one message with split.strict, nothing
written; with strict false the rows go to rejects.tsv and are counted in summary.json."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mbcd.data.manifest import read_manifest, read_rejects
from mbcd.data.media import make_video
from mbcd.stages import generate, manifest
from mbcd.testing.layouts import make_epic_layout, make_hac_layout, write_params

DOMAINS = ["studio", "street", "cartoon"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("bad")
    params = write_params(tmp / "g.yaml", {"synth": {"adapter": "synth", "root": str(tmp / "synth"), "domains": DOMAINS}},
                          generator={"size": "tiny"})  # fmt: skip
    assert generate.main(["--params", str(params), "--out", str(tmp / "synth")]) == 0
    epic = make_epic_layout(tmp / "epic", domains=("D1", "D2"), clips_per_split=2)
    hac = make_hac_layout(tmp / "hac", domains=("human", "animal"), clips_per_split=2)
    return {"synth": tmp / "synth", "epic_kitchens": epic, "hac": hac}


DOMS = {"synth": DOMAINS, "epic_kitchens": ["D1", "D2"], "hac": ["human", "animal"]}


def _copy(pristine: dict[str, Path], adapter: str, tmp: Path) -> Path:
    root = tmp / adapter
    shutil.copytree(pristine[adapter], root)
    return root


def _run(tmp: Path, adapter: str, root: Path, strict: bool, capsys) -> tuple[int, str, Path]:
    params = write_params(tmp / f"p_{strict}.yaml", {"d": {"adapter": adapter, "root": str(root), "domains": DOMS[adapter]}},
                          split={"strict": strict})  # fmt: skip
    out = tmp / f"m_{strict}"
    rc = manifest.main(["--params", str(params), "--dataset", "d", "--out", str(out)])
    return rc, capsys.readouterr().err, out


def _edit_labels(root: Path, row: int, **values) -> None:
    df = pd.read_csv(root / "labels.tsv", sep="\t", keep_default_na=False)
    for key, value in values.items():
        df.loc[row - 1, key] = value
    df.to_csv(root / "labels.tsv", sep="\t", index=False)


def _synth_path(root: Path, row: int) -> Path:
    return root / pd.read_csv(root / "labels.tsv", sep="\t").loc[row - 1, "path"]


def _silent_video(root: Path) -> None:  # labels.tsv row 3: a video without an audio track
    make_video(_synth_path(root, 3), np.zeros((16, 32, 32, 3), np.uint8), 16)


def _short_video(root: Path) -> None:  # row 4: 8 frames where labels.tsv says 16
    make_video(_synth_path(root, 4), np.zeros((8, 32, 32, 3), np.uint8), 16, audio=np.zeros(8000), audio_rate=8000)


def _truncated(root: Path) -> None:  # row 5: first 40 % of the bytes
    path = _synth_path(root, 5)
    path.write_bytes(path.read_bytes()[: int(0.4 * path.stat().st_size)])


def _garbage(root: Path) -> None:  # row 6: not an mp4 at all
    _synth_path(root, 6).write_bytes(b"\x00not a video" * 50)


def _missing_synth(root: Path) -> None:  # row 2
    _synth_path(root, 2).unlink()


def _label_out(root: Path) -> None:  # row 7: label 9 of 6 classes
    _edit_labels(root, 7, label=9)


def _missing_hac(root: Path) -> None:  # HAC_train_only_human.csv line 2
    (root / "human" / "videos" / "human_train_001.mp4").unlink()


def _epic_short(root: Path) -> None:  # D1_train.pkl row 1: the segment's last frames are gone
    pkl = pd.read_pickle(root / "D1_train.pkl")
    stop = int(pkl.loc[1, "stop_frame"])
    for i in range(stop - 3, stop + 1):
        (root / "rgb" / "train" / "D1" / pkl.loc[1, "video_id"] / f"frame_{i:010d}.jpg").unlink()


def _epic_pickle_columns(root: Path) -> None:  # D2_test.pkl lacks verb_class and stop_frame
    pd.read_pickle(root / "D2_test.pkl").drop(columns=["verb_class", "stop_frame"]).to_pickle(root / "D2_test.pkl")


CASES: dict[str, tuple[str, Callable[[Path], None], str, str, str]] = {
    # name: (adapter, corruption, source file, row, reason fragment)
    "missing_file": ("synth", _missing_synth, "labels.tsv", "2", "missing file studio/studio_0001.mp4"),
    "missing_file_hac": (
        "hac",
        _missing_hac,
        "HAC_train_only_human.csv",
        "2",
        "missing file human/videos/human_train_001.mp4",
    ),
    "no_audio_track": ("synth", _silent_video, "labels.tsv", "3", "video without audio track: studio/studio_0002.mp4"),
    "too_short": (
        "synth",
        _short_video,
        "labels.tsv",
        "4",
        "clip shorter than asked: studio/studio_0003.mp4 has 8 frames",
    ),
    "too_short_epic": (
        "epic_kitchens",
        _epic_short,
        "D1_train.pkl",
        "1",
        "clip shorter than asked: rgb/train/D1/P08_01 lacks",
    ),
    "truncated_mp4": ("synth", _truncated, "labels.tsv", "5", "studio/studio_0004.mp4: unreadable video"),
    "garbage_mp4": ("synth", _garbage, "labels.tsv", "6", "studio/studio_0005.mp4: unreadable video"),
    "label_outside": ("synth", _label_out, "labels.tsv", "7", "label 9 outside class list (0..5)"),
    "pickle_columns": (
        "epic_kitchens",
        _epic_pickle_columns,
        "D2_test.pkl",
        "",
        "missing column(s) stop_frame, verb_class",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_strict_reports_and_writes_nothing(case: str, pristine, tmp_path: Path, capsys) -> None:
    adapter, corrupt, file, row, reason = CASES[case]
    root = _copy(pristine, adapter, tmp_path)
    corrupt(root)
    rc, err, out = _run(tmp_path, adapter, root, True, capsys)
    where = f"{file}, row {row}: " if row else f"{file}: "
    assert rc == 1 and "1 bad row(s)" in err and where + reason in err, err
    assert not out.exists() and not list(tmp_path.glob(".m_True*"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_not_strict_rejects(case: str, pristine, tmp_path: Path, capsys) -> None:
    adapter, corrupt, file, row, reason = CASES[case]
    root = _copy(pristine, adapter, tmp_path)
    corrupt(root)
    rc, err, out = _run(tmp_path, adapter, root, False, capsys)
    assert rc == 0, err
    rejects = read_rejects(out / "rejects.tsv")
    assert [(r.file, r.row, r.stage) for r in rejects] == [(file, row, "manifest")]
    assert reason in rejects[0].reason
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_rejected"] == 1
    kept = pd.concat([read_manifest(out / f"{d}.tsv") for d in DOMS[adapter]])
    assert rejects[0].clip_id not in set(kept["clip_id"])
    n_pristine = {"synth": 72, "epic_kitchens": 8, "hac": 8}[adapter]
    lost = 2 if case == "pickle_columns" else 1  # the whole pickle's rows
    assert summary["n_rows"] == len(kept) == n_pristine - lost


def test_all_offenders_in_one_message(pristine, tmp_path: Path, capsys) -> None:
    root = _copy(pristine, "synth", tmp_path)
    for case in ("missing_file", "no_audio_track", "too_short", "truncated_mp4", "garbage_mp4", "label_outside"):
        CASES[case][1](root)
    rc, err, out = _run(tmp_path, "synth", root, True, capsys)
    assert rc == 1 and "6 bad row(s)" in err and not out.exists()
    for row in range(2, 8):
        assert f"labels.tsv, row {row}: " in err
