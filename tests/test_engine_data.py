"""Engine data path: tiny caches in the contract's format -> batches; augmentation; bad input.

Also home of the helpers the other ``test_engine_*`` files import (``make_tiny_study``, ``tiny_params``).
"""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mbcd.engine.data import AFTER_CONVERSION, BatchLoader, ClipSet, draw_augment, read_split
from mbcd.stages.common import StageError

torch.set_num_threads(1)
DOMAINS = ["studio", "street", "cartoon"]
NUM_CLASSES = 3
CLIPS_PER_DOMAIN = 12
SHAPES = {"rgb": (4, 16, 16, 3), "flow": (4, 16, 16, 2), "audio": (16, 16)}


def _clip(mod: str, label: int, dom: int, rng: np.random.Generator) -> np.ndarray:
    """A clip whose content carries its class (plus a domain offset and noise), so training can learn."""
    shape = SHAPES[mod]
    if mod == "audio":
        x = rng.normal(0, 1, shape)
        x[4 * label : 4 * label + 4] += 2.0 + 0.3 * dom
        return x.astype(np.float16)
    x = rng.integers(0, 60, shape) + 60 * label + 20 * dom
    return np.clip(x, 0, 255).astype(np.uint8)


def write_cache(folder: Path, mod: str, clips: list[tuple[str, int, int]], seed: int) -> None:
    """data.npy + index.tsv + report.json for one (domain, modality), rows in reverse clip order."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arr = np.stack([_clip(mod, lab, dom, rng) for _, lab, dom in clips][::-1])
    np.save(folder / "data.npy", arr)
    with open(folder / "index.tsv", "w") as fh:
        fh.write("row\tclip_id\n")
        for row, (cid, _, _) in enumerate(clips[::-1]):
            fh.write(f"{row}\t{cid}\n")
    report = {"dataset": "synth", "modality": mod, "n_ok": len(clips), "n_failed": 0, "failures": []}
    (folder / "report.json").write_text(json.dumps(report))


def write_split(path: Path, rows: list[tuple[str, str, int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["clip_id", "domain", "split", "label", "class_name"])
        for cid, dom, lab in rows:
            w.writerow([cid, dom, "train", lab, f"class{lab}"])


def make_tiny_study(
    root: Path, modalities: tuple[str, ...] = ("rgb", "flow", "audio"), clips_per_domain: int = CLIPS_PER_DOMAIN
) -> tuple[Path, Path]:
    """Caches for 3 domains x 12 clips and the ms_cartoon splits; returns (caches dir, splits dir)."""
    caches, splits = root / "cache" / "synth", root / "splits" / "synth" / "ms_cartoon"
    rows: dict[str, list[tuple[str, str, int]]] = {"train": [], "val": [], "test": []}
    for d, dom in enumerate(DOMAINS):
        clips = [(f"{dom}_{i:03d}", i % NUM_CLASSES, d) for i in range(clips_per_domain)]
        for m, mod in enumerate(modalities):
            write_cache(caches / dom / mod, mod, clips, seed=10 * d + m)
        for i, (cid, lab, _) in enumerate(clips):
            split = "test" if dom == "cartoon" else ("val" if i % 3 == 2 else "train")
            rows[split].append((cid, dom, lab))
    for split, r in rows.items():
        write_split(splits / f"{split}.tsv", r)
    return caches, splits


def tiny_params(base: dict[str, Any], **train: Any) -> dict[str, Any]:
    """The repository params shrunk to test size: tiny encoders and heads, 2 epochs, tracking off."""
    p = copy.deepcopy(base)
    p["model"]["encoder_args"] = {m: {"width": 4} for m in ("rgb", "flow", "audio")}
    p["model"]["head"] = {"hidden": 16, "dropout": 0.0}
    p["train"].update({"epochs": 2, "batch_size": 8, "device": "cpu", "lr": 1e-3, **train})
    p["eval"]["batch_size"] = 16
    p["tracking"]["enabled"] = False
    return p


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    return make_tiny_study(tmp_path)


def test_batches_have_contract_layout_and_values(tiny: tuple[Path, Path]) -> None:
    caches, splits = tiny
    clips = ClipSet(read_split(splits / "train.tsv"), caches, ("rgb", "flow", "audio"), DOMAINS)
    assert len(clips) == 16
    batch = next(BatchLoader(clips, 4, train=False).epoch())
    assert batch["rgb"].shape == (4, 3, 4, 16, 16) and batch["rgb"].dtype == torch.float32
    assert batch["flow"].shape == (4, 2, 4, 16, 16)
    assert batch["audio"].shape == (4, 1, 16, 16)
    assert batch["label"].tolist() == [0, 1, 0, 1] and batch["domain"].tolist() == [0, 0, 0, 0]
    # the cache stores rows in reverse order: row lookup by clip_id, normalisation as documented
    raw = np.load(caches / "studio" / "rgb" / "data.npy")[CLIPS_PER_DOMAIN - 1]  # studio_000
    want = (
        torch.from_numpy(raw).permute(3, 0, 1, 2).float() / 255 - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1, 1)
    ) / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1, 1)
    torch.testing.assert_close(batch["rgb"][0], want)
    flow_raw = np.load(caches / "studio" / "flow" / "data.npy")[CLIPS_PER_DOMAIN - 1]
    torch.testing.assert_close(batch["flow"][0, 1], (torch.from_numpy(flow_raw[..., 1]).float() - 128) / 128)


def test_training_epoch_is_a_function_of_the_generator_and_sharded(tiny: tuple[Path, Path]) -> None:
    caches, splits = tiny
    clips = ClipSet(read_split(splits / "train.tsv"), caches, ("rgb", "audio"), DOMAINS)
    full = list(BatchLoader(clips, 8, True, augment=True).epoch(torch.Generator().manual_seed(3)))
    again = list(BatchLoader(clips, 8, True, augment=True).epoch(torch.Generator().manual_seed(3)))
    assert len(full) == 2
    for a, b in zip(full, again, strict=True):
        assert torch.equal(a["rgb"], b["rgb"]) and torch.equal(a["audio"], b["audio"])
    halves = [
        list(BatchLoader(clips, 8, True, True, rank=r, world=2).epoch(torch.Generator().manual_seed(3))) for r in (0, 1)
    ]
    for i, batch in enumerate(full):  # rank r holds rows [4r, 4r+4) of the same augmented global batch
        for r in (0, 1):
            assert torch.equal(halves[r][i]["rgb"], batch["rgb"][4 * r : 4 * r + 4])
            assert torch.equal(halves[r][i]["label"], batch["label"][4 * r : 4 * r + 4])


def test_crop_and_flip_are_shared_by_rgb_and_flow_and_flip_negates_horizontal_flow(tiny: tuple[Path, Path]) -> None:
    caches, splits = tiny
    clips = ClipSet(read_split(splits / "train.tsv"), caches, ("rgb", "flow"), DOMAINS)
    idx = np.array([0, 1, 2])
    plain = clips.batch(idx)
    # clip 0 flipped, centre crop; clip 1 not flipped, shifted to the top-left corner (2 pixels of padding)
    aug = {"flip": torch.tensor([True, False, False]), "shift": torch.tensor([[0.5, 0.5], [0.0, 0.0], [0.99, 0.5]])}
    out = clips.batch(idx, aug)
    torch.testing.assert_close(out["rgb"][0], plain["rgb"][0].flip(-1))
    torch.testing.assert_close(out["flow"][0, 0], -plain["flow"][0, 0].flip(-1))  # horizontal flow negated
    torch.testing.assert_close(out["flow"][0, 1], plain["flow"][0, 1].flip(-1))
    # shift 0 = offset -2: output row r is input row r-2, and the two new rows are padding
    torch.testing.assert_close(out["rgb"][1, :, :, 2:, 2:], plain["rgb"][1, :, :, :-2, :-2])
    black = (0 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(out["rgb"][1, :, :, :2, :].amax((1, 2, 3)), black)
    assert (out["flow"][1, :, :, :2] == 0).all()  # flow padding is zero motion
    torch.testing.assert_close(out["rgb"][2, :, :, :-2], plain["rgb"][2, :, :, 2:])  # shift max = offset +2
    torch.testing.assert_close(out["flow"][2, :, :, :-2], plain["flow"][2, :, :, 2:])


def test_audio_augmentation_adds_bounded_noise_and_zeroes_one_band() -> None:
    x = torch.full((3, 1, 64, 10), 5.0)
    aug = draw_augment(3, torch.Generator().manual_seed(1), {"audio": (1, 64, 10)})
    out = AFTER_CONVERSION["audio"](x, aug)
    zero_rows = (out == 0).all(-1).squeeze(1)  # (B, F)
    assert zero_rows.sum(1).tolist() == [2, 2, 2]  # round(64 * 9 / 257) rows per clip
    kept = out[out != 0]
    assert kept.min() >= 4.95 and kept.max() <= 5.05 and kept.std() > 0.01


def test_missing_modality_cache_names_the_folder(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    caches, splits = tiny
    import shutil

    shutil.rmtree(caches / "street" / "flow")
    with pytest.raises(StageError, match=r"street/flow: no extraction cache"):
        ClipSet(read_split(splits / "train.tsv"), caches, ("rgb", "flow"), DOMAINS)


def test_clip_missing_from_cache_and_bad_split_rows(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    caches, splits = tiny
    bad = tmp_path / "bad.tsv"
    write_split(bad, [("studio_000", "studio", 0), ("studio_999", "studio", 1)])
    with pytest.raises(StageError, match=r"clip 'studio_999' \(row 3 of .*bad.tsv\) is not in the rgb cache"):
        ClipSet(read_split(bad), caches, ("rgb",), DOMAINS)
    bad.write_text("clip_id\tdomain\tlabel\nx\tstudio\tcat\n")
    with pytest.raises(StageError, match=r"bad.tsv: row 2: label 'cat' is not an integer"):
        read_split(bad)
    bad.write_text("clip_id\tlabel\nx\t1\n")
    with pytest.raises(StageError, match=r"bad.tsv: missing column\(s\) domain"):
        read_split(bad)
    write_split(bad, [("studio_000", "moon", 0)])
    with pytest.raises(StageError, match=r"domain 'moon' is not one of"):
        ClipSet(read_split(bad), caches, ("rgb",), DOMAINS)


def test_prefetch_yields_the_same_batches_and_passes_errors_on(tiny: tuple[Path, Path]) -> None:
    from mbcd.engine.data import prefetch

    caches, splits = tiny
    clips = ClipSet(read_split(splits / "train.tsv"), caches, ("rgb", "audio"), DOMAINS)
    loader = BatchLoader(clips, 4, True, augment=True)
    plain = list(loader.epoch(torch.Generator().manual_seed(5)))
    ahead = list(prefetch(loader.epoch(torch.Generator().manual_seed(5)), 2))
    assert len(plain) == len(ahead) == 4
    assert all(
        torch.equal(a["rgb"], b["rgb"]) and torch.equal(a["audio"], b["audio"])
        for a, b in zip(plain, ahead, strict=True)
    )

    def broken():
        yield plain[0]
        raise StageError("cache row unreadable")

    got = prefetch(broken(), 1)
    assert torch.equal(next(got)["rgb"], plain[0]["rgb"])
    with pytest.raises(StageError, match="cache row unreadable"):
        next(got)
    early = prefetch(loader.epoch(torch.Generator().manual_seed(5)), 1)
    next(early)
    early.close()  # a consumer that stops early releases the worker thread


def test_malformed_cache_index_is_named(tiny: tuple[Path, Path]) -> None:
    caches, splits = tiny
    (caches / "street" / "audio" / "index.tsv").write_text("row\tclip_id\n0\tstreet_000\n")
    with pytest.raises(StageError, match=r"street/audio/index.tsv"):
        ClipSet(read_split(splits / "train.tsv"), caches, ("audio",), DOMAINS)


def test_memory_mapped_mode_gives_the_same_batches(tiny: tuple[Path, Path]) -> None:
    caches, splits = tiny
    rows = read_split(splits / "train.tsv")
    mods = ("rgb", "flow", "audio")
    loaded, mapped = ClipSet(rows, caches, mods, DOMAINS), ClipSet(rows, caches, mods, DOMAINS, in_memory_bytes=0)
    assert set(loaded.arrays) == set(mods) and set(mapped.mapped) == set(mods) and not mapped.arrays
    idx = np.array([15, 0, 9, 3, 8])  # both source domains, unsorted
    for a, b in [(loaded.batch(idx), mapped.batch(idx))]:
        assert all(torch.equal(a[k], b[k]) for k in (*mods, "label", "domain"))
