"""The split stage: both protocols, both validation policies, target sets, extraction rejects, counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mbcd.data.manifest import read_classes, read_manifest, read_rejects
from mbcd.stages import generate, manifest, split
from mbcd.testing.layouts import make_hac_layout, write_params

DOMAINS = ["studio", "street", "cartoon"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> tuple[Path, Path]:
    """Tiny synth data and its manifests."""
    tmp = tmp_path_factory.mktemp("split")
    params = write_params(tmp / "p.yaml", {"synth": {"adapter": "synth", "root": str(tmp / "raw"), "domains": DOMAINS}},
                          generator={"size": "tiny"})  # fmt: skip
    assert generate.main(["--params", str(params), "--out", str(tmp / "raw")]) == 0
    assert manifest.main(["--params", str(params), "--dataset", "synth", "--out", str(tmp / "man")]) == 0
    return tmp / "raw", tmp / "man"


def _split(tmp: Path, synth, caches: Path | None = None, **split_cfg) -> Path:
    raw, man = synth
    params = write_params(tmp / "p.yaml", {"synth": {"adapter": "synth", "root": str(raw), "domains": DOMAINS}},
                          generator={"size": "tiny"}, split=split_cfg,
                          experiments={"protocols": ["multi_source", "single_source"]})  # fmt: skip
    out = tmp / "splits"
    argv = ["--params", str(params), "--dataset", "synth", "--manifests", str(man), "--out", str(out)]
    assert split.main(argv + ["--caches", str(caches or tmp / "no_caches")]) == 0
    return out


def ms_classes(out: Path) -> list[str]:
    return json.loads((out / "counts.json").read_text())["classes"]


def _parts(out: Path, exp: str) -> dict:
    return {s: read_manifest(out / exp / f"{s}.tsv") for s in ("train", "val", "test")}


def test_holdout_protocols_and_no_leak(synth, tmp_path: Path) -> None:
    out = _split(tmp_path, synth, validation="source_holdout", holdout_fraction=0.25, target_set="all")
    counts = json.loads((out / "counts.json").read_text())["experiments"]
    assert sorted(counts) == sorted([f"ms_{d}" for d in DOMAINS] + [f"ss_{d}" for d in DOMAINS])
    for exp in counts:
        p = _parts(out, exp)
        info = json.loads((out / exp / "experiment.json").read_text())
        targets = set(info["targets"])
        assert not targets & set(p["train"]["domain"]) and not targets & set(p["val"]["domain"])
        assert set(p["test"]["domain"]) == targets and len(p["test"]) == 24 * len(targets)  # all target clips
        assert not set(p["train"]["clip_id"]) & set(p["val"]["clip_id"])
        assert (p["train"]["split"] == "train").all() and (p["val"]["split"] == "train").all()
        per_source = 18  # train split of one tiny domain: 3 clips x 6 classes; 0.25 * 3 rounds to 1 per class
        assert len(p["val"]) == 6 * len(info["sources"]) and len(p["train"]) == (per_source - 6) * len(info["sources"])
        assert counts[exp]["val"]["per_domain"][info["sources"][0]] == {c: 1 for c in info["classes"]}
        assert counts[exp]["train"]["total"] == len(p["train"])
    assert read_classes(out / "classes.tsv") == read_classes(out / "ms_studio" / "classes.tsv") == ms_classes(out)
    ms = json.loads((out / "ms_studio" / "experiment.json").read_text())
    assert ms["sources"] == ["street", "cartoon"] and ms["domains"] == ["street", "cartoon", "studio"]


def test_holdout_is_seeded(synth, tmp_path: Path) -> None:
    a = _split(tmp_path / "a", synth, validation="source_holdout", holdout_fraction=0.25)
    b = _split(tmp_path / "b", synth, validation="source_holdout", holdout_fraction=0.25)
    assert (a / "ms_street" / "val.tsv").read_text() == (b / "ms_street" / "val.tsv").read_text()
    assert set(_parts(a, "ms_street")["val"]["clip_id"]) != set(_parts(a, "ms_studio")["val"]["clip_id"])


def test_source_test_and_target_test(synth, tmp_path: Path) -> None:
    out = _split(tmp_path, synth, validation="source_test", target_set="test")
    p = _parts(out, "ms_cartoon")
    assert (p["val"]["split"] == "test").all() and len(p["val"]) == 12 and len(p["train"]) == 36
    assert (p["test"]["split"] == "test").all() and len(p["test"]) == 6 and set(p["test"]["domain"]) == {"cartoon"}


def test_extraction_failures_dropped(synth, tmp_path: Path) -> None:
    caches = tmp_path / "caches"
    report = caches / "street" / "flow" / "report.json"
    report.parent.mkdir(parents=True)
    failures = [{"clip_id": "street_0000", "file": "street/street_0000.mp4", "reason": "decode error"}]
    report.write_text(json.dumps({"dataset": "synth", "domain": "street", "modality": "flow", "failures": failures}))
    out = _split(tmp_path, synth, caches=caches, validation="source_test", target_set="all")
    for exp in ("ms_studio", "ms_street", "ss_street"):
        assert not any("street_0000" in set(df["clip_id"]) for df in _parts(out, exp).values())
        rej = read_rejects(out / exp / "rejects.tsv")
        assert [(r.clip_id, r.stage, r.file) for r in rej] == [("street_0000", "extract", "street/street_0000.mp4")]
        assert "flow extraction failed: decode error" in rej[0].reason
    assert len(_parts(out, "ms_street")["test"]) == 23
    assert json.loads((out / "counts.json").read_text())["n_dropped_extract"] == 1


def test_bad_inputs(synth, tmp_path: Path, capsys) -> None:
    caches = tmp_path / "caches"
    (caches / "studio" / "rgb").mkdir(parents=True)
    (caches / "studio" / "rgb" / "report.json").write_text("{not json")
    raw, man = synth
    params = write_params(tmp_path / "p.yaml", {"synth": {"adapter": "synth", "root": str(raw), "domains": DOMAINS}})
    base = ["--params", str(params), "--dataset", "synth", "--out", str(tmp_path / "s")]
    assert split.main(base + ["--manifests", str(man), "--caches", str(caches)]) == 1
    assert "studio/rgb/report.json: malformed extraction report" in capsys.readouterr().err
    assert split.main(base + ["--manifests", str(tmp_path / "nowhere"), "--caches", str(caches)]) == 1
    assert "classes.tsv: not found" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_hac_target_test_only(tmp_path: Path) -> None:
    root = make_hac_layout(tmp_path / "hac", clips_per_split=2)
    params = write_params(tmp_path / "p.yaml", {"hac": {"adapter": "hac", "root": str(root), "domains": ["human", "animal", "cartoon"]}},
                          split={"validation": "source_test", "target_set": "test"})  # fmt: skip
    assert manifest.main(["--params", str(params), "--dataset", "hac", "--out", str(tmp_path / "m")]) == 0
    argv = [
        "--params",
        str(params),
        "--dataset",
        "hac",
        "--manifests",
        str(tmp_path / "m"),
        "--caches",
        str(tmp_path / "c"),
    ]
    assert split.main(argv + ["--out", str(tmp_path / "s")]) == 0
    p = _parts(tmp_path / "s", "ms_human")
    assert len(p["train"]) == 4 and len(p["val"]) == 4 and len(p["test"]) == 2
