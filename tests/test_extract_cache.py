"""The cache's guarantees: bad clips reported by file + reason while the rest is extracted, strict mode,
atomic output, rerun skip, ``open_cache`` validation and the stage's argument errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_extract_layouts import SMALL, write_manifest, write_params

from mbcd.data.media import make_video, write_wav
from mbcd.extract import extract_domain, open_cache
from mbcd.stages import extract as stage
from mbcd.stages.common import StageError

torch.set_num_threads(1)
cv2.setNumThreads(1)


def _frames(n: int = 16, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, size, size, 3), dtype=np.uint8)


def _row(clip_id: str, **cells: object) -> dict[str, str]:
    base = {"clip_id": clip_id, "domain": "d", "split": "train", "label": "0", "class_name": "x", "rgb": "",
            "flow": "", "audio": "", "start_frame": "0", "stop_frame": "16", "start_sec": "0", "stop_sec": "1",
            "fps": "16"}  # fmt: skip
    return base | {k: str(v) for k, v in cells.items()}


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """Good clips plus each kind of bad input, as real files."""
    root = tmp_path / "root"
    tone = 0.3 * np.sin(np.arange(8000) * 0.2)
    make_video(root / "good.mp4", _frames(), 16, audio=tone, audio_rate=8000)
    make_video(root / "good2.mp4", _frames(seed=1), 16, audio=tone, audio_rate=8000)
    make_video(root / "silent.mp4", _frames(seed=2), 16)  # no audio track
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    data = (root / "good.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 3])
    write_wav(root / "a.wav", tone, 8000)
    for comp in ("u", "v"):  # EPIC-style flow folder with frame 5 of u/ missing
        (root / "fl" / comp).mkdir(parents=True)
        for n in range(1, 10):
            if not (comp == "u" and n == 5):
                cv2.imwrite(str(root / "fl" / comp / f"frame_{n:010d}.jpg"), np.full((32, 32), 128, np.uint8))
    return root


def _rows() -> list[dict[str, str]]:
    return [
        _row("ok1", rgb="good.mp4", audio="good.mp4"),
        _row("corrupt", rgb="corrupt.mp4", audio="corrupt.mp4"),
        _row("truncated", rgb="truncated.mp4", audio="truncated.mp4"),
        _row("silent", rgb="silent.mp4", audio="silent.mp4"),
        _row("zero", rgb="good.mp4", audio="a.wav", start_frame=8, stop_frame=8, start_sec=0.5, stop_sec=0.5),
        _row("noflow", rgb="good.mp4", flow="fl", start_frame=1, stop_frame=17),
        _row("short", rgb="good.mp4", audio="good.mp4", stop_frame=40),  # the video has 16 frames
        _row("ok2", rgb="good2.mp4", audio="a.wav"),
    ]


EXPECTED = {  # modality -> {clip_id: (file, reason fragment)} for the rows that must fail
    "rgb": {"corrupt": ("corrupt.mp4", "cannot open video"), "truncated": ("truncated.mp4", ""),
            "short": ("good.mp4", "clip shorter than asked: video has 16 frames"),
            "zero": ("good.mp4", "zero-length segment")},
    "flow": {"corrupt": ("corrupt.mp4", "cannot open video"), "truncated": ("truncated.mp4", ""),
             "zero": ("good.mp4", "zero-length segment"), "noflow": ("u/frame_0000000005.jpg", "missing frame"),
             "short": ("good.mp4", "clip shorter than asked")},
    "audio": {"corrupt": ("corrupt.mp4", ""), "truncated": ("truncated.mp4", ""),
              "silent": ("silent.mp4", "no audio track"), "zero": ("a.wav", "zero-length segment"),
              "noflow": ("manifest column audio", "no audio source")},
}  # fmt: skip


@pytest.mark.parametrize("modality", ["rgb", "flow", "audio"])
def test_bad_inputs_reported_rest_extracted(tmp_path: Path, media: Path, modality: str) -> None:
    out = tmp_path / "cache"
    report = extract_domain(modality=modality, extract_params=SMALL, rows=_rows(), root=media, out=out,
                            progress=False)  # fmt: skip
    failures = {f["clip_id"]: f for f in report["failures"]}
    assert set(failures) == set(EXPECTED[modality]), failures
    for clip_id, (file, reason) in EXPECTED[modality].items():
        assert failures[clip_id]["file"].endswith(file) and reason in failures[clip_id]["reason"], failures[clip_id]
        assert failures[clip_id]["reason"]
    data, index = open_cache(out)
    ok = [r["clip_id"] for r in _rows() if r["clip_id"] not in failures]
    assert list(index) == ok and data.shape[0] == len(ok) == report["n_ok"]
    assert report["n_failed"] == len(failures)


def test_strict_fails_listing_clips_and_leaves_no_cache(tmp_path: Path, media: Path) -> None:
    """With strict the stage fails naming each bad clip; nothing (not even a temp folder) is left behind."""
    manifest = write_manifest(tmp_path / "d.tsv", _rows())
    p = write_params(tmp_path, __import__("yaml").safe_load(open("params.yaml")), "ds", media, "d", strict=True)
    out = tmp_path / "cache" / "rgb"
    argv = ["--params", str(p), "--dataset", "ds", "--domain", "d", "--modality", "rgb", "--manifest",
            str(manifest), "--out", str(out), "--quiet"]  # fmt: skip
    with pytest.raises(StageError, match=r"4 clip\(s\) failed.*corrupt \(.*corrupt.mp4\).*zero-length"):
        stage.run(stage.build_parser().parse_args(argv))
    assert stage.main(argv) == 1
    assert not out.exists() and list((tmp_path / "cache").iterdir()) == []


def test_interrupted_write_leaves_no_cache(tmp_path: Path, media: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job killed mid-way (here: an exception after the first clip) leaves no cache folder."""
    import mbcd.extract.cache as cache

    def boom(self: object, clip_id: str, array: np.ndarray) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cache.CacheWriter, "add", boom)
    with pytest.raises(KeyboardInterrupt):
        extract_domain(modality="rgb", extract_params=SMALL, rows=_rows()[:1], root=media, out=tmp_path / "c" / "rgb",
                       progress=False)  # fmt: skip
    assert list((tmp_path / "c").iterdir()) == []


def test_killed_job_leftovers_are_not_a_cache_and_get_cleaned(tmp_path: Path, media: Path) -> None:
    """What a SIGKILLed job leaves (its temp folder) is not taken for a cache, and the next run removes it."""
    out = tmp_path / "c" / "rgb"
    stale = tmp_path / "c" / ".rgb.tmp-99999"
    stale.mkdir(parents=True)
    np.save(stale / "data.npy", np.zeros((1, 4, 24, 24, 3), np.uint8))
    with pytest.raises(ValueError, match=r"rgb/data.npy: missing"):
        open_cache(out)
    report = extract_domain(modality="rgb", extract_params=SMALL, rows=[_row("ok1", rgb="good.mp4")], root=media,
                            out=out, progress=False)  # fmt: skip
    assert report["n_ok"] == 1 and not report.get("skipped")
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["rgb"]


def test_rerun_with_same_inputs_does_nothing(tmp_path: Path, media: Path) -> None:
    rows, out = [_row("ok1", rgb="good.mp4"), _row("ok2", rgb="good2.mp4")], tmp_path / "cache"
    first = extract_domain(modality="rgb", extract_params=SMALL, rows=rows, root=media, out=out, progress=False)
    stamp = (out / "data.npy").stat().st_mtime_ns
    again = extract_domain(modality="rgb", extract_params=SMALL, rows=rows, root=media, out=out, progress=False)
    assert again.get("skipped") and again["inputs_hash"] == first["inputs_hash"]
    assert (out / "data.npy").stat().st_mtime_ns == stamp
    changed = json.loads(json.dumps(SMALL))
    changed["rgb"]["crop"] = 16
    third = extract_domain(modality="rgb", extract_params=changed, rows=rows, root=media, out=out, progress=False)
    assert not third.get("skipped") and open_cache(out)[0].shape == (2, 4, 16, 16, 3)
    fourth = extract_domain(modality="rgb", extract_params=changed, rows=rows[:1], root=media, out=out, progress=False)
    assert not fourth.get("skipped") and fourth["n_ok"] == 1


def test_open_cache_names_inconsistent_files(tmp_path: Path, media: Path) -> None:
    out = tmp_path / "cache"
    rows = [_row("ok1", rgb="good.mp4"), _row("ok2", rgb="good2.mp4")]
    extract_domain(modality="rgb", extract_params=SMALL, rows=rows, root=media, out=out, progress=False)
    index = out / "index.tsv"
    index.write_text("row\tclip_id\n0\tok1\n1\tok1\n")
    with pytest.raises(ValueError, match=r"index.tsv, line 3: clip_id 'ok1' listed twice"):
        open_cache(out)
    index.write_text("row\tclip_id\n0\tok1\n")
    with pytest.raises(ValueError, match=r"index.tsv: lists 1 clips, .*data.npy has 2 rows"):
        open_cache(out)
    index.write_text("row\tclip_id\n0\tok1\n5\tok2\n")
    with pytest.raises(ValueError, match=r"line 3: row 5 but .*data.npy has 2 rows"):
        open_cache(out)
    index.unlink()
    with pytest.raises(ValueError, match=r"index.tsv: missing"):
        open_cache(out)


def test_stage_argument_errors(tmp_path: Path, media: Path, capsys: pytest.CaptureFixture) -> None:
    import yaml

    p = write_params(tmp_path, yaml.safe_load(open("params.yaml")), "ds", media, "d")
    good = write_manifest(tmp_path / "d.tsv", [_row("ok1", rgb="good.mp4")])
    wrong = write_manifest(tmp_path / "w.tsv", [_row("ok1", rgb="good.mp4", domain="elsewhere")])
    dup = write_manifest(tmp_path / "dup.tsv", [_row("ok1", rgb="good.mp4"), _row("ok1", rgb="good2.mp4")])
    bad = tmp_path / "bad.tsv"
    bad.write_text("clip_id\trgb\nok1\tgood.mp4\n")
    cases = [
        (["--dataset", "nope", "--domain", "d", "--manifest", str(good)], "no block datasets.nope"),
        (["--dataset", "ds", "--domain", "zz", "--manifest", str(good)], "--domain zz: not in datasets.ds.domains"),
        (["--dataset", "ds", "--domain", "d", "--manifest", str(bad)], "bad.tsv: missing column(s) domain"),
        (["--dataset", "ds", "--domain", "d", "--manifest", str(wrong)], "w.tsv, line 2: domain 'elsewhere'"),
        (["--dataset", "ds", "--domain", "d", "--manifest", str(dup)], "dup.tsv, line 3: clip_id 'ok1' repeats line 2"),
        (["--dataset", "ds", "--domain", "d", "--manifest", str(tmp_path / "none.tsv")], "manifest not found"),
        (["--dataset", "ds", "--domain", "d", "--manifest", str(good), "--root", str(tmp_path / "x")], "not a folder"),
    ]
    for extra, message in cases:
        argv = ["--params", str(p), "--modality", "rgb", "--out", str(tmp_path / "o"), "--quiet", *extra]
        assert stage.main(argv) == 1
        assert message in capsys.readouterr().err


def test_dead_worker_fails_the_job_instead_of_hanging(
    tmp_path: Path, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed outright (as by a decoder segfault) ends the job with a message naming the clip."""
    from mbcd.extract.frames import FrameExtractor

    real = FrameExtractor.extract

    def crash_on_bad(self: FrameExtractor, row: dict[str, str]) -> np.ndarray:
        if row["clip_id"] == "bad":
            os._exit(3)
        return real(self, row)

    monkeypatch.setattr(FrameExtractor, "extract", crash_on_bad)  # inherited by the forked workers
    rows = [_row("ok1", rgb="good.mp4"), _row("bad", rgb="good2.mp4"), _row("ok2", rgb="good2.mp4")]
    with pytest.raises(ValueError, match=r"worker process died while extracting one of the clips .*bad"):
        extract_domain(modality="rgb", extract_params=SMALL, rows=rows, root=media, out=tmp_path / "c" / "rgb",
                       threads=2, progress=False)  # fmt: skip
    assert list((tmp_path / "c").iterdir()) == []


def test_crop_larger_than_resize_is_a_params_error(tmp_path: Path, media: Path) -> None:
    bad = json.loads(json.dumps(SMALL))
    bad["rgb"]["crop"] = 64
    with pytest.raises(ValueError, match=r"extract.rgb.crop \(64\) is larger than extract.rgb.resize \(32\)"):
        extract_domain(modality="rgb", extract_params=bad, rows=[_row("ok1", rgb="good.mp4")], root=media,
                       out=tmp_path / "c", progress=False)  # fmt: skip
