"""The bundled benchmark: determinism, and a data card that is true of the generated media (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import decord
import numpy as np
import pandas as pd
import pytest

from mbcd.data.synth import MODS, class_pitch, class_rgb, domain_style, plan
from mbcd.stages import generate
from mbcd.testing.layouts import write_params

DOMAINS = ["studio", "street", "cartoon"]


def _generate(tmp: Path, seed: int = 0, threads: int = 1, name: str = "synth") -> Path:
    params = write_params(tmp / f"{name}.yaml", {"synth": {"adapter": "synth", "root": str(tmp / name), "domains": DOMAINS}},
                          generator={"size": "tiny", "seed": seed})  # fmt: skip
    assert generate.main(["--params", str(params), "--out", str(tmp / name), "--threads", str(threads)]) == 0
    return tmp / name


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return _generate(tmp_path_factory.mktemp("synth"))


def _frames(path: Path) -> np.ndarray:
    vr = decord.VideoReader(str(path))
    return vr.get_batch(list(range(len(vr)))).asnumpy()


def _audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as box:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in box.decode(audio=0)])


def test_layout_and_card(synth: Path) -> None:
    labels = pd.read_csv(synth / "labels.tsv", sep="\t", keep_default_na=False)
    card = json.loads((synth / "data_card.json").read_text())
    assert len(labels) == 3 * 6 * 4 == card["n_clips"]
    assert card["classes"] == ["push", "pull", "drop", "lift", "spin", "roll"]
    assert set(card["reliability"]) == set(DOMAINS) and all(set(r) == set(MODS) for r in card["reliability"].values())
    for d in DOMAINS:  # stratified ~80/20 split: 1 of 4 clips per class is test
        mine = labels[labels["domain"] == d]
        assert card["counts"][d] == {"train": 18, "test": 6}
        assert (mine[mine["split"] == "test"]["label"].value_counts() == 1).all()
    assert all((synth / p).is_file() for p in labels["path"])
    with av.open(str(synth / labels["path"][0])) as box:
        assert box.streams.video[0].codec_context.name == "h264" and box.streams.audio[0].codec_context.name == "aac"
    assert "| studio |" in (synth / "data_card.md").read_text()


def test_deterministic(synth: Path, tmp_path: Path) -> None:
    """Same seed -> same labels and the same decoded frames and audio, whatever the worker count."""
    again = _generate(tmp_path, seed=0, threads=2)
    assert (synth / "labels.tsv").read_text() == (again / "labels.tsv").read_text()
    for rel in ["studio/studio_0000.mp4", "street/street_0013.mp4", "cartoon/cartoon_0023.mp4"]:
        np.testing.assert_array_equal(_frames(synth / rel), _frames(again / rel))
        np.testing.assert_array_equal(_audio(synth / rel), _audio(again / rel))
    other = plan(1, DOMAINS, 6, 4)
    assert [s.cues for s in other] != [s.cues for s in plan(0, DOMAINS, 6, 4)]


def test_card_reliability_matches_bookkeeping(synth: Path) -> None:
    """The realised cue agreement per domain and modality is the designed reliability (up to rounding)."""
    labels = pd.read_csv(synth / "labels.tsv", sep="\t", keep_default_na=False)
    card = json.loads((synth / "data_card.json").read_text())
    for d in DOMAINS:
        mine = labels[labels["domain"] == d]
        for m in MODS:
            agree = float((mine[f"cue_{m}"] == mine["label"]).mean())
            assert abs(agree - card["reliability"][d][m]) <= 0.5 / len(mine) + 1e-9, (d, m, agree)
            assert agree == pytest.approx(card["measured_reliability"][d][m], abs=1e-4)
            corrupted = mine["corrupted"].str.contains(m)
            assert (corrupted == (mine[f"cue_{m}"] != mine["label"])).all()


def _posterize(rgb: np.ndarray, levels: int) -> np.ndarray:
    if not levels:
        return rgb
    step = 256 / levels
    return (np.floor(rgb / step) + 0.5) * step


def read_appearance(frames: np.ndarray, d_i: int, num_classes: int) -> int:
    """Nearest class colour to the mean colour of the saturated (object) pixels."""
    px = frames.reshape(-1, 3).astype(float)
    sat = px.max(1) - px.min(1)
    obj = px[sat > 0.6 * sat.max()].mean(0)
    style = domain_style(d_i, 0)
    refs = [_posterize(class_rgb(c, num_classes, style), style.posterize) for c in range(num_classes)]
    return int(np.argmin([np.linalg.norm(obj - r) for r in refs]))


def read_motion(frames: np.ndarray) -> int:
    """Classify the object's centroid track: pulse, linear direction, wave or rotation sense."""
    f = frames.astype(float)
    sat = f.max(-1) - f.min(-1)
    mask = sat > 0.6 * sat.max()
    yy, xx = np.mgrid[0 : f.shape[1], 0 : f.shape[2]]
    area = mask.sum((1, 2)).astype(float)
    x = (mask * xx).sum((1, 2)) / area
    y = (mask * yy).sum((1, 2)) / area
    if area.std() / area.mean() > 0.2:
        return 7
    v = np.stack([np.diff(x), np.diff(y)], 1)
    path = np.linalg.norm(v, axis=1).sum()
    dx, dy = x[-1] - x[0], y[-1] - y[0]
    if np.hypot(dx, dy) > 0.6 * path:
        return (0 if dx > 0 else 1) if abs(dx) > abs(dy) else (2 if dy > 0 else 3)
    if np.ptp(y) < 0.35 * np.ptp(x):
        return 6
    cross = (v[:-1, 0] * v[1:, 1] - v[:-1, 1] * v[1:, 0]).sum()
    return 4 if cross > 0 else 5


def read_tone(samples: np.ndarray, rate: int, num_classes: int) -> int:
    """The class whose pitch band holds the most spectral energy."""
    mag = np.abs(np.fft.rfft(samples))
    freqs = np.fft.rfftfreq(samples.size, 1 / rate)
    energy = [mag[(freqs > 0.975 * class_pitch(c, num_classes)) & (freqs < 1.025 * class_pitch(c, num_classes))].sum()
              for c in range(num_classes)]  # fmt: skip
    return int(np.argmax(energy))


def test_media_carry_the_recorded_cues(synth: Path) -> None:
    """Decode every clip and read each cue back from the pixels / samples: it is the cue labels.tsv records,
    so the card's reliabilities describe the media, not only the bookkeeping."""
    labels = pd.read_csv(synth / "labels.tsv", sep="\t", keep_default_na=False)
    hits = {m: 0 for m in MODS}
    for rec in labels.itertuples():
        frames = _frames(synth / rec.path)
        hits["rgb"] += read_appearance(frames, DOMAINS.index(rec.domain), 6) == rec.cue_rgb
        hits["flow"] += read_motion(frames) == rec.cue_flow
        hits["audio"] += read_tone(_audio(synth / rec.path), rec.audio_rate, 6) == rec.cue_audio
    rates = {m: h / len(labels) for m, h in hits.items()}
    print("cue read-back agreement", rates)
    assert rates["rgb"] >= 0.97 and rates["audio"] >= 0.97 and rates["flow"] >= 0.9, rates


def test_fusion_beats_every_single_cue(synth: Path) -> None:
    """Bayes fusion of the three cues (with the card's reliabilities) beats the most reliable single cue."""
    labels = pd.read_csv(synth / "labels.tsv", sep="\t", keep_default_na=False)
    card = json.loads((synth / "data_card.json").read_text())
    for d in DOMAINS:
        mine = labels[labels["domain"] == d]
        rel = card["reliability"][d]
        scores = np.zeros((len(mine), 6))
        for m in MODS:  # log P(cue | class): rel if equal, (1 - rel) / 5 otherwise
            cue = mine[f"cue_{m}"].to_numpy()
            scores += np.where(np.arange(6)[None] == cue[:, None], np.log(rel[m]), np.log((1 - rel[m]) / 5))
        fused = float((scores.argmax(1) == mine["label"].to_numpy()).mean())
        assert fused > max(rel.values()), (d, fused, rel)
