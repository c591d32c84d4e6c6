"""The analyses' measurements on tiny in-process models: flatness at radius 0 is the unperturbed loss, the
noise curve at σ = 0 is the clean accuracy (the evaluate stage's), a missing modality changes nothing for a
fused head that ignores it, the linear probe beats chance on separable features, aggregation averages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_analysis_stage import selected_model
from test_engine_data import make_tiny_study, tiny_params

from mbcd.analysis.common import aggregate, iter_batches, mean_tree
from mbcd.analysis.embeddings import Embeddings
from mbcd.analysis.flatness import fused_loss, hessian_top_eigenvalue, loss_increase, perturbed_parameters
from mbcd.analysis.imbalance import Imbalance, probe_accuracy
from mbcd.analysis.robustness import robustness_scores
from mbcd.engine.data import BatchLoader, ClipSet
from mbcd.engine.evaluation import evaluate
from mbcd.experiments import Run

torch.set_num_threads(1)
ALL = "rgb+flow+audio"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tiny_study(tmp_path_factory.mktemp("study"))


@pytest.fixture
def tparams(params: dict[str, Any]) -> dict[str, Any]:
    return tiny_params(params)


@pytest.mark.parametrize("algorithm", ["ERM", "MBCD"])
def test_flatness_at_radius_zero_is_the_unperturbed_loss(tparams: dict[str, Any], study: tuple[Path, Path],
                                                        algorithm: str) -> None:  # fmt: skip
    sel = selected_model(tparams, study, algorithm, ALL)
    batches = list(iter_batches(sel, "train", 8))
    before = {k: v.clone() for k, v in sel.algorithm.state_dict().items()}
    out = loss_increase(sel, batches, [0.0, 1.0, 0.0], directions=3, seed=1)
    with torch.no_grad():
        assert out["loss_mean"][0] == out["loss"] == float(fused_loss(sel, batches))
    assert out["increase_mean"][0] == 0.0 and out["increase_std"][0] == 0.0 and out["increase_mean"][2] == 0.0
    assert out["increase_mean"][1] != 0.0 and out["increase_std"][1] > 0.0
    assert all(torch.equal(v, sel.algorithm.state_dict()[k]) for k, v in before.items()), "weights restored"
    # the perturbed tensors are what the fused prediction uses: no uni-modal head, every encoder
    names = {id(p): n for n, p in sel.algorithm.named_parameters()}
    perturbed = [names.get(id(p), "") for p in perturbed_parameters(sel)]
    assert not any(".heads." in n for n in perturbed) and any("encoders.audio" in n for n in perturbed)
    flags = [p.requires_grad for p in perturbed_parameters(sel)]
    assert np.isfinite(hessian_top_eigenvalue(sel, batches, iters=3, seed=0))
    assert [p.requires_grad for p in perturbed_parameters(sel)] == flags, "the teacher stays frozen"


def test_noise_at_std_zero_is_clean_accuracy_and_clean_is_the_evaluate_stages(
    tparams: dict[str, Any], study: tuple[Path, Path]
) -> None:
    sel = selected_model(tparams, study, "MBCD", ALL)
    out = robustness_scores(sel, [0.0, 0.5, 3.0], ["rgb", "flow", "audio"], batch_size=5, seed=0)
    s = sel.setup
    loader = BatchLoader(ClipSet(s.splits["test"], s.caches, s.modalities, s.domain_names), 16, False)
    scores = evaluate(sel.algorithm, loader, sel.which, s.num_classes, s.domain_names, sel.device)
    assert out["clean"] == scores.acc
    assert all(curve["acc"][0] == out["clean"] and curve["std"] == [0.0, 0.5, 3.0] for curve in out["noise"].values())
    again = robustness_scores(sel, [0.0, 0.5, 3.0], ["rgb", "flow", "audio"], batch_size=5, seed=0)
    assert again == out, "noise is seeded"


def test_missing_modality_changes_nothing_when_the_fused_head_ignores_it(
    tparams: dict[str, Any], study: tuple[Path, Path]
) -> None:
    sel = selected_model(tparams, study, "ERM", ALL)
    net = sel.algorithm.network
    dims = net.dims
    lo = dims["rgb"]  # feature slices in canonical order: rgb, flow, audio
    with torch.no_grad():
        net.fused_head.net[0].weight[:, lo : lo + dims["flow"]] = 0.0  # the fused head ignores flow
    out = robustness_scores(sel, [0.0], [], batch_size=16, seed=0)
    assert out["missing"]["flow"] == out["clean"]
    batch = next(iter_batches(sel, "test", 16))
    z = net.encode(batch)
    torch.testing.assert_close(net.fuse(z, {"flow": torch.zeros(1, 1)}), net.fuse(z), rtol=0, atol=0)
    assert not torch.equal(net.fuse(z, {"rgb": torch.zeros(1, 1)}), net.fuse(z)), "a used modality does matter"


def test_linear_probe_beats_chance_on_separable_features() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (4, 8))
    y = np.repeat(np.arange(4), 30)
    x = centres[y] + rng.normal(0, 0.5, (len(y), 8))
    perm = rng.permutation(len(y))
    train, test = perm[:80], perm[80:]
    assert probe_accuracy(x[train], y[train], x[test], y[test]) >= 0.95
    noise = rng.normal(0, 1, x.shape)  # no signal: about chance
    assert probe_accuracy(noise[train], y[train], noise[test], y[test]) < 0.6


def test_imbalance_and_embeddings_measure_every_modality_and_clip(
    tparams: dict[str, Any], study: tuple[Path, Path]
) -> None:
    sel = selected_model(tparams, study, "MBCD", ALL)
    sel.which = "student"  # the student has the uni-modal heads
    sel.run_dir.mkdir(exist_ok=True)
    recs = [{"epoch": e, "model": "student", **{f"amd/{k}/{m}": e / 10 for k in "sp" for m in ALL.split("+")}}
            for e in (2, 1)]  # fmt: skip
    (sel.run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    imb = Imbalance({"max_clips": 0, "probe": {"C": 1.0, "max_iter": 50}}, batch_size=8).measure(sel, seed=0)
    assert set(imb["modalities"]) == {"rgb", "flow", "audio"}
    assert all(set(v) == {"probe", "head"} for v in imb["modalities"].values())  # the student: no head_student
    assert imb["curves"] == {"epoch": [1, 2], **{k: {m: [0.1, 0.2] for m in ALL.split("+")} for k in "sp"}}
    emb = Embeddings({"method": "pca", "max_points": 10}, batch_size=8).measure(sel, seed=0)
    assert emb["n_points"] == len(emb["points"]["x"]) == 10 and emb["method"] == "pca"
    full = Embeddings({"method": "tsne", "perplexity": 3.0, "max_points": 0}, batch_size=8).measure(sel, seed=0)
    assert full["n_points"] == 8 + 12  # source val + target test


def test_aggregate_means_over_seeds_then_targets_and_merges_unimodal_sets() -> None:
    assert mean_tree([{"a": 1.0, "b": [1, 2]}, {"a": 3.0, "b": [3, 4], "c": 1}]) == {"a": 2.0, "b": [2.0, 3.0]}
    assert mean_tree([float("nan"), 2.0]) == 2.0
    measured = [
        (Run("s", "ms_a", "rgb+audio", "ERM", 0), ["a"], {"acc": 0.2}),
        (Run("s", "ms_a", "rgb+audio", "ERM", 1), ["a"], {"acc": 0.4}),
        (Run("s", "ms_b", "rgb+audio", "ERM", 0), ["b"], {"acc": 0.6}),
        (Run("s", "ms_a", "rgb", "Unimodal", 0), ["a"], {"m": {"rgb": 0.5}}),
        (Run("s", "ms_a", "audio", "Unimodal", 0), ["a"], {"m": {"audio": 0.7}}),
    ]
    out = aggregate(Imbalance({}), measured)
    assert out["ERM"]["targets"]["a"]["acc"] == pytest.approx(0.3) and out["ERM"]["mean"]["acc"] == pytest.approx(0.45)
    assert out["Unimodal"]["targets"]["a"] == {"m": {"rgb": 0.5, "audio": 0.7}}
    assert len(out["ERM"]["runs"]) == 3
    pts = [(Run("s", "ms_a", "rgb", "ERM", seed), ["a"], {"n": seed, "points": {"label": [seed]}}) for seed in (0, 2)]
    out = aggregate(Embeddings({}), pts)["ERM"]
    assert out["targets"]["a"] == {"n": 1.0, "points": {"label": [0]}} and out["mean"] == {"n": 1.0}
