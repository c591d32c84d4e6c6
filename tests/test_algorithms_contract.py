"""Every registered algorithm x every modality subset against the Algorithm contract (base.py), plus bad
batches, the state_dict round trip, the ablations and MBCD's look-ahead pass against a hand-built one."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from mbcd.algorithms import build_algorithm
from mbcd.config import ParamsError, deep_merge
from mbcd.registries import ALGORITHMS

torch.set_num_threads(1)
SINGLE = ["rgb", "flow", "audio"]
SUBSETS = SINGLE + ["rgb+flow", "rgb+audio", "flow+audio", "rgb+flow+audio"]
B, C = 4, 3


def tiny(params: dict[str, Any]) -> dict[str, Any]:
    """Small encoders and heads; CMRF's SMA teacher starts after one step so three updates move it."""
    params["model"]["encoder_args"] = {m: {"width": 2} for m in SINGLE}
    params["model"]["head"] = {"hidden": 8, "dropout": 0.5}
    params["algorithms"]["CMRF"]["teacher"]["start_step"] = 1
    params["algorithms"]["CMRF"]["proj_dim"] = 8
    params["algorithms"]["SimMMDG"]["proj_dim"] = 8
    return params


def make_batch(seed: int = 0, n: int = B) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "rgb": torch.randn(n, 3, 4, 16, 16, generator=g),
        "flow": torch.randn(n, 2, 4, 16, 16, generator=g),
        "audio": torch.randn(n, 1, 16, 16, generator=g),
        "label": torch.tensor([0, 1, 2, 1, 0, 2, 1, 0][:n]),
        "domain": torch.zeros(n, dtype=torch.long),
    }


def cases() -> list[tuple[str, str]]:
    names = ALGORITHMS.names()  # filled by importing mbcd.algorithms (above)
    return [(a, m) for a in names for m in (SINGLE if a == "Unimodal" else SUBSETS)]


def _teacher_differs(algo: torch.nn.Module) -> bool:
    student = dict(algo.network.named_parameters())
    return any(not torch.equal(p, student[n]) for n, p in algo.teacher_network().named_parameters())


@pytest.mark.parametrize(("name", "mods"), cases())
def test_contract(params: dict[str, Any], name: str, mods: str) -> None:
    torch.manual_seed(0)
    algo = build_algorithm(name, mods, C, tiny(params))
    modalities = tuple(mods.split("+"))
    batch = make_batch()
    algo.train()
    for step in range(3):
        out = algo.update(batch, step)
        assert all(isinstance(v, float) and math.isfinite(v) for v in out.values()), out
        terms = {k: v for k, v in out.items() if k.startswith("loss/") and k != "loss/total"}
        assert terms and out["loss/total"] == pytest.approx(sum(terms.values()), rel=1e-5, abs=1e-5)
    assert int(algo.num_steps) == 3
    algo.eval()
    with torch.no_grad():
        for which in ("student", "teacher"):
            assert algo.predict(batch, which).shape == (B, C)
            preds = algo.predict_modalities(batch, which)
            assert preds["fused"].shape == (B, C) and all(v.shape == (B, C) for v in preds.values())
            feats = algo.features(batch, which)
            assert set(feats) == set(modalities) | {"fused"}
            assert feats["fused"].shape == (B, sum(feats[m].shape[1] for m in modalities))
    if algo.has_teacher:
        assert _teacher_differs(algo)
        assert not any(p.requires_grad for p in algo.teacher.parameters())
        opt_ids = {id(p) for g in algo.optimizer.param_groups for p in g["params"]}
        assert not any(id(p) in opt_ids for p in algo.teacher.parameters())
    else:
        assert torch.equal(algo.predict(batch, "teacher"), algo.predict(batch, "student"))


def test_mbcd_reports_amd_and_unimodal_heads(params: dict[str, Any]) -> None:
    torch.manual_seed(0)
    algo = build_algorithm("MBCD", "rgb+flow+audio", C, tiny(params))
    out = algo.update(make_batch(), 0)
    for m in SINGLE:
        assert {f"amd/p/{m}", f"amd/s/{m}", f"amd/r/{m}", f"loss/ce_{m}", f"loss/kd_{m}"} <= set(out)
    least = min(SINGLE, key=lambda m: out[f"amd/s/{m}"])
    assert out[f"amd/p/{least}"] == 0.0
    assert set(algo.predict_modalities(make_batch())) == {"fused", *SINGLE}


@pytest.mark.parametrize("name", ["ERM", "EMA", "MBCD", "SimMMDG", "CMRF"])
def test_bad_batches_say_which(params: dict[str, Any], name: str) -> None:
    algo = build_algorithm(name, "rgb+audio", C, tiny(params))
    batch = make_batch()
    missing = {k: v for k, v in batch.items() if k != "audio"}
    with pytest.raises(ValueError, match="missing modality 'audio'"):
        algo.update(missing, 0)
    bad = dict(batch, label=torch.tensor([0, 1, 3, 1]))
    with pytest.raises(ValueError, match=r"batch\['label'\]\[2\] = 3 is outside \[0, 3\)"):
        algo.update(bad, 0)
    with pytest.raises(ValueError, match=r"batch\['rgb'\]: expected a float tensor with 5 dims"):
        algo.predict(dict(batch, rgb=torch.zeros(4, 3, 16, 16)))


def test_unimodal_needs_exactly_one_modality(params: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Unimodal takes exactly one modality, got rgb\\+audio"):
        build_algorithm("Unimodal", "rgb+audio", C, tiny(params))


def test_unknown_algorithm_and_missing_encoder(params: dict[str, Any]) -> None:
    with pytest.raises(ParamsError, match="unknown algorithm 'Foo'"):
        build_algorithm("Foo", "rgb", C, tiny(params))
    del params["model"]["encoders"]["flow"]
    with pytest.raises(ValueError, match="no encoder configured for modality 'flow'"):
        build_algorithm("ERM", "rgb+flow", C, tiny(params))


def test_non_finite_loss_names_the_term(params: dict[str, Any]) -> None:
    algo = build_algorithm("ERM", "rgb", C, tiny(params))
    batch = make_batch()
    batch["rgb"][0, 0, 0, 0, 0] = float("nan")
    before = {n: p.detach().clone() for n, p in algo.named_parameters()}
    with pytest.raises(FloatingPointError, match="step 7: loss/ce_fused is nan"):
        algo.update(batch, 7)
    assert all(torch.equal(before[n], p) for n, p in algo.named_parameters())  # no optimiser step was taken
    assert int(algo.num_steps) == 0


@pytest.mark.parametrize("name", ["MBCD", "CMRF"])
def test_state_dict_round_trip(params: dict[str, Any], name: str) -> None:
    torch.manual_seed(0)
    a = build_algorithm(name, "rgb+audio", C, tiny(params))
    for step in range(2):
        a.update(make_batch(step), step)
    torch.manual_seed(1)
    b = build_algorithm(name, "rgb+audio", C, tiny(params))
    b.load_state_dict(a.state_dict())
    b.optimizer.load_state_dict(a.optimizer.state_dict())
    a.eval(), b.eval()
    batch = make_batch(5)
    with torch.no_grad():
        for which in ("student", "teacher"):
            assert torch.equal(a.predict(batch, which), b.predict(batch, which))
    a.train(), b.train()
    torch.manual_seed(3)
    out_a = a.update(batch, 2)
    torch.manual_seed(3)
    out_b = b.update(batch, 2)
    assert out_a == out_b
    assert int(b.teacher.num_updates) == 3


MBCD_VARIANTS = {
    "second_order": {"gcc": {"order": 2}},
    "fixed_per_batch": {"amd": {"mode": "fixed", "p": 0.5, "granularity": "per_batch"}},
    "floor_dsu_sma": {
        "amd": {"floor": 0.3},
        "dsu": {"enabled": True, "p": 1.0},
        "teacher": {"rule": "sma", "warmup": 2},
    },
    "only_amd": {"gcc": {"order": 0}, "teacher": {"enabled": False}, "distill": {"enabled": False}},
    "only_gcc": {"amd": {"mode": "none"}, "teacher": {"enabled": False}, "distill": {"enabled": False}},
    "teacher_no_distill": {"amd": {"mode": "none"}, "gcc": {"order": 0}, "distill": {"enabled": False}},
    "distill_only": {"amd": {"mode": "none"}, "gcc": {"order": 0}},
}


@pytest.mark.parametrize("variant", sorted(MBCD_VARIANTS))
def test_mbcd_component_subsets(params: dict[str, Any], variant: str) -> None:
    torch.manual_seed(0)
    tiny(params)
    params["algorithms"]["MBCD"] = deep_merge(params["algorithms"]["MBCD"], MBCD_VARIANTS[variant])
    algo = build_algorithm("MBCD", "rgb+flow+audio", C, params)
    for step in range(3):
        out = algo.update(make_batch(step), step)
        assert all(math.isfinite(v) for v in out.values())
    assert ("loss/kd_fused" in out) == params["algorithms"]["MBCD"]["distill"]["enabled"]
    assert algo.has_teacher == params["algorithms"]["MBCD"]["teacher"].get("enabled", True)


@pytest.mark.parametrize(
    "ablation", ["MBCD_fixed_dropout", "MBCD_no_dropout", "MBCD_no_gcc", "MBCD_no_distill", "MBCD_no_teacher"]
)
def test_params_ablations_build_and_step(params: dict[str, Any], ablation: str) -> None:
    algo = build_algorithm(ablation, "rgb+audio", C, tiny(params))
    assert type(algo).__name__ == "MBCD"
    assert math.isfinite(algo.update(make_batch(), 0)["loss/total"])


def test_distill_without_teacher_is_refused(params: dict[str, Any]) -> None:
    params["algorithms"]["MBCD"]["teacher"]["enabled"] = False
    with pytest.raises(ValueError, match="distill.enabled needs the teacher"):
        build_algorithm("MBCD", "rgb+audio", C, tiny(params))


@pytest.mark.parametrize("freeze_stem", [False, True])
def test_mbcd_lookahead_pass_matches_a_hand_built_one(params: dict[str, Any], freeze_stem: bool) -> None:
    """ce_fused of MBCD.update equals CE of the fused head with every θ_k replaced by θ_k − α ∇L_uni,k."""
    torch.manual_seed(0)
    tiny(params)
    params["model"]["head"]["dropout"] = 0.0
    params["model"]["freeze_stem"] = freeze_stem
    alpha = 0.5
    params["algorithms"]["MBCD"].update(
        amd={"mode": "none"}, gcc={"order": 1, "alpha": alpha}, distill={"enabled": False}
    )
    algo = build_algorithm("MBCD", "rgb+audio", C, params)
    batch = make_batch()
    ref = copy.deepcopy(algo.network)
    z = ref.encode(batch)
    uni = sum(F.cross_entropy(ref.heads[m](z[m]), batch["label"]) for m in ("rgb", "audio"))
    thetas = [p for m in ("rgb", "audio") for p in ref.encoders[m].parameters() if p.requires_grad]
    grads = torch.autograd.grad(uni, thetas)
    with torch.no_grad():
        for p, g in zip(thetas, grads, strict=True):
            p.sub_(alpha * g)
    expected = F.cross_entropy(ref.fuse(ref.encode(batch)), batch["label"])
    plain = F.cross_entropy(algo.network.fuse(algo.network.encode(batch)), batch["label"])
    out = algo.update(batch, 0)
    assert out["loss/ce_fused"] == pytest.approx(float(expected.detach()), rel=1e-5)
    assert abs(out["loss/ce_fused"] - float(plain.detach())) > 1e-4  # the look-ahead changes the fused loss


def test_pretrained_encoder_and_frozen_stem(params: dict[str, Any], tmp_path) -> None:
    """model.pretrained loads a local encoder checkpoint; freeze_stem leaves θ_k = the trunk for GCC."""
    torch.manual_seed(0)
    tiny(params)
    source = build_algorithm("ERM", "rgb", C, params)
    ckpt = tmp_path / "rgb.pt"
    torch.save(source.network.encoders["rgb"].state_dict(), ckpt)
    params["model"].update(pretrained={"rgb": str(ckpt)}, freeze_stem=True)
    torch.manual_seed(1)
    algo = build_algorithm("MBCD", "rgb", C, params)
    loaded = algo.network.encoders["rgb"].state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in source.network.encoders["rgb"].state_dict().items())
    names = algo.network.lookahead_names("rgb")
    assert names and names == algo.network.encoders["rgb"].trunk_parameter_names()
    params["model"]["pretrained"] = {"rgb": str(tmp_path / "missing.pt")}
    with pytest.raises(ValueError, match="model.pretrained.rgb: .*missing.pt"):
        build_algorithm("ERM", "rgb", C, params)
