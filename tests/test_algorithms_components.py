"""MBCD's components against hand-computed values (method.md §2–§4): AMD, GCC, teacher, distillation, DSU,
and the supervised contrastive loss of the baselines."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

from mbcd.algorithms.components.amd import (
    AdaptiveModalityDropout,
    batch_confidence,
    drop_probabilities,
    relative_speed,
    sample_masks,
)
from mbcd.algorithms.components.distill import distillation_terms, kl_teacher_student
from mbcd.algorithms.components.dsu import dsu_perturb
from mbcd.algorithms.components.gcc import GradientConsistency, lookahead
from mbcd.algorithms.components.losses import supcon_loss
from mbcd.algorithms.components.teacher import WeightAveragedTeacher

torch.set_num_threads(1)
LN3 = math.log(3.0)


# ---------------------------------------------------------------- AMD (Eqs. 2-4)
def test_batch_confidence_sums_max_softmax() -> None:
    logits = torch.tensor([[0.0, 0.0], [LN3, 0.0], [0.0, LN3]])  # max softmax 0.5, 0.75, 0.75
    assert float(batch_confidence(logits)) == pytest.approx(2.0)


def test_relative_speed_two_and_three_modalities() -> None:
    assert relative_speed(torch.tensor([3.0, 1.0])).tolist() == pytest.approx([3.0, 1 / 3])
    assert relative_speed(torch.tensor([3.0, 2.0, 1.0])).tolist() == pytest.approx([2.25, 4 / 3, 5 / 12])
    assert relative_speed(torch.tensor([5.0])).tolist() == [1.0]


def test_adaptive_probabilities_two_modalities() -> None:
    p = drop_probabilities(torch.tensor([3.0, 1.0]))
    assert p.tolist() == pytest.approx([math.tanh(2.0), 0.0])
    assert drop_probabilities(torch.tensor([1.0, 3.0])).tolist() == pytest.approx([0.0, math.tanh(2.0)])


def test_adaptive_probabilities_three_modalities() -> None:
    p = drop_probabilities(torch.tensor([3.0, 2.0, 1.0]))
    assert p.tolist() == pytest.approx([math.tanh(1.25), math.tanh(1 / 3), 0.0], abs=1e-6)
    p = drop_probabilities(torch.tensor([2.0, 1.0, 1.0]))  # r = (2, 0.75, 0.75)
    assert p.tolist() == pytest.approx([math.tanh(1.0), 0.0, 0.0], abs=1e-6)


def test_equal_confidences_drop_nothing() -> None:
    assert drop_probabilities(torch.tensor([1.5, 1.5, 1.5])).tolist() == [0.0, 0.0, 0.0]


def test_floor_fixed_and_none() -> None:
    s = torch.tensor([3.0, 2.0, 1.0])
    floored = drop_probabilities(s, floor=0.2)
    assert floored.tolist() == pytest.approx([0.2 + 0.8 * math.tanh(1.25), 0.2 + 0.8 * math.tanh(1 / 3), 0.0], abs=1e-6)
    assert drop_probabilities(s, mode="fixed", p=0.5).tolist() == [0.5, 0.5, 0.0]  # least confident kept
    assert drop_probabilities(torch.tensor([1.0, 4.0]), mode="fixed", p=0.5).tolist() == [0.0, 0.5]
    assert drop_probabilities(s, mode="none").tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="amd.mode: 'random'"):
        drop_probabilities(s, mode="random")


def test_mask_shapes_and_rates() -> None:
    torch.manual_seed(0)
    masks = sample_masks({"rgb": 0.3, "audio": 0.0, "flow": 1.0}, 4000, "per_sample", "cpu")
    assert masks["rgb"].shape == (4000, 1)
    assert float(masks["rgb"].mean()) == pytest.approx(0.7, abs=0.03)
    assert bool((masks["audio"] == 1).all()) and bool((masks["flow"] == 0).all())
    batch = sample_masks({"rgb": 0.3}, 16, "per_batch", "cpu")
    assert batch["rgb"].shape == (1, 1)
    with pytest.raises(ValueError, match="amd.granularity: 'per_clip'"):
        sample_masks({"rgb": 0.3}, 4, "per_clip", "cpu")


def test_amd_component_reports_and_keeps_least_confident() -> None:
    torch.manual_seed(0)
    b = 64
    confident = torch.tensor([[10.0, 0.0]]).repeat(b, 1)  # max softmax ~1
    unsure = torch.zeros(b, 2)  # max softmax 0.5
    amd = AdaptiveModalityDropout({"mode": "adaptive", "granularity": "per_sample"})
    masks, stats = amd({"rgb": confident, "audio": unsure})
    s_rgb = float(torch.softmax(confident[0], 0).max()) * b
    assert stats["amd/s/rgb"] == pytest.approx(s_rgb, rel=1e-5)
    assert stats["amd/s/audio"] == pytest.approx(0.5 * b)
    assert stats["amd/r/rgb"] == pytest.approx(s_rgb / (0.5 * b), rel=1e-5)
    assert stats["amd/p/rgb"] == pytest.approx(math.tanh(s_rgb / (0.5 * b) - 1), rel=1e-5)
    assert stats["amd/p/audio"] == 0.0
    assert masks is not None and masks["rgb"].shape == (b, 1)
    assert bool((masks["audio"] == 1).all()) and 0 < float(masks["rgb"].sum()) < b
    none_masks, _ = AdaptiveModalityDropout({"mode": "none"})({"rgb": confident, "audio": unsure})
    assert none_masks is None


# ---------------------------------------------------------------- GCC (Eqs. 5-6)
def _linear_problem() -> tuple[nn.Linear, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    model = nn.Linear(3, 2, bias=False).double()
    x, t = torch.randn(3, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
    x2, t2 = torch.randn(3, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
    return model, x, t, x2, t2


def _uni_loss(model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((model(x) - t) ** 2).sum()


def test_lookahead_weights_are_theta_minus_alpha_g() -> None:
    model, x, t, _, _ = _linear_problem()
    w = model.weight.detach().clone()
    g = torch.outer(w @ x - t, x)  # analytic ∇_W 0.5||Wx − t||²
    shifted = lookahead(_uni_loss(model, x, t), dict(model.named_parameters()), alpha=0.1, order=1)
    assert torch.allclose(shifted["weight"], w - 0.1 * g)
    assert lookahead(_uni_loss(model, x, t), dict(model.named_parameters()), 0.1, order=0)["weight"] is model.weight


def test_first_order_gradient_is_the_fused_gradient_at_the_lookahead() -> None:
    model, x, t, x2, t2 = _linear_problem()
    alpha = 0.3
    w = model.weight.detach().clone()
    w_prime = w - alpha * torch.outer(w @ x - t, x)
    shifted = GradientConsistency({"order": 1, "alpha": alpha})(_uni_loss(model, x, t), dict(model.named_parameters()))
    out = functional_call(model, shifted, (x2,))
    (0.5 * ((out - t2) ** 2).sum()).backward()
    assert torch.allclose(model.weight.grad, torch.outer(w_prime @ x2 - t2, x2))


def _outer_objective(w: torch.Tensor, x, t, x2, t2, alpha: float) -> torch.Tensor:
    w_prime = w - alpha * torch.outer(w @ x - t, x)
    return 0.5 * ((w_prime @ x2 - t2) ** 2).sum()


def test_second_order_matches_finite_differences() -> None:
    model, x, t, x2, t2 = _linear_problem()
    alpha = 0.5
    shifted = lookahead(_uni_loss(model, x, t), dict(model.named_parameters()), alpha, order=2)
    (0.5 * ((functional_call(model, shifted, (x2,)) - t2) ** 2).sum()).backward()
    w = model.weight.detach().clone()
    fd = torch.zeros_like(w)
    eps = 1e-6
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            e = torch.zeros_like(w)
            e[i, j] = eps
            fd[i, j] = (_outer_objective(w + e, x, t, x2, t2, alpha) - _outer_objective(w - e, x, t, x2, t2, alpha)) / (
                2 * eps
            )
    assert torch.allclose(model.weight.grad, fd, atol=1e-7)
    model.weight.grad = None  # the first-order gradient misses the Hessian term: it must differ here
    shifted1 = lookahead(_uni_loss(model, x, t), dict(model.named_parameters()), alpha, order=1)
    (0.5 * ((functional_call(model, shifted1, (x2,)) - t2) ** 2).sum()).backward()
    assert not torch.allclose(model.weight.grad, fd, atol=1e-4)


def test_gcc_rejects_bad_order() -> None:
    with pytest.raises(ValueError, match="gcc.order: 3"):
        GradientConsistency({"order": 3})


# ---------------------------------------------------------------- teacher (Eq. 7)
def _scalar_model(value: float) -> nn.Linear:
    m = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        m.weight.fill_(value)
    return m


def _run_teacher(values: list[float], **kwargs) -> list[float]:
    import copy

    student = _scalar_model(1.0)
    teacher = WeightAveragedTeacher(copy.deepcopy(student), **kwargs)
    seen = []
    for v in values:
        with torch.no_grad():
            student.weight.fill_(v)
        teacher.update(student)
        seen.append(float(teacher.model.weight))
    return seen


def test_ema_updates() -> None:
    assert _run_teacher([2.0, 3.0], rule="ema", decay=0.9) == pytest.approx([1.1, 0.9 * 1.1 + 0.3])


def test_sma_updates_are_the_running_mean() -> None:
    assert _run_teacher([2.0, 3.0, 6.0], rule="sma") == pytest.approx([1.5, 2.0, 3.0])


def test_start_step_copies_until_it_starts() -> None:
    assert _run_teacher([2.0, 3.0, 5.0], rule="ema", decay=0.9, start_step=2) == pytest.approx(
        [2.0, 3.0, 0.9 * 3 + 0.5]
    )
    assert _run_teacher([2.0, 3.0, 5.0, 8.0], rule="sma", start_step=2) == pytest.approx([2.0, 3.0, 4.0, 16 / 3])


def test_warmup_ramps_beta() -> None:
    teacher = WeightAveragedTeacher(_scalar_model(0.0), rule="ema", decay=0.8, warmup=4)
    betas = [teacher.update(_scalar_model(1.0)) for _ in range(6)]
    assert betas == pytest.approx([0.2, 0.4, 0.6, 0.8, 0.8, 0.8])


def test_teacher_averages_float_buffers_copies_counters_and_stays_frozen() -> None:
    import copy

    student = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    teacher = WeightAveragedTeacher(copy.deepcopy(student), rule="ema", decay=0.5)
    with torch.no_grad():
        student[1].running_mean.fill_(4.0)
        student[1].num_batches_tracked.fill_(7)
    teacher.update(student)
    assert teacher.model[1].running_mean.tolist() == [2.0, 2.0]
    assert int(teacher.model[1].num_batches_tracked) == 7
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.training and not teacher.model[1].training
    assert "num_updates" in teacher.state_dict() and int(teacher.num_updates) == 1
    with pytest.raises(ValueError, match="teacher.rule: 'swad'"):
        WeightAveragedTeacher(nn.Linear(1, 1), rule="swad")


# ---------------------------------------------------------------- distillation (Eq. 8)
def test_kl_direction_value_and_batch_mean() -> None:
    teacher = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    student = torch.tensor([[LN3, 0.0], [1.0, 2.0]], requires_grad=True)
    kl = kl_teacher_student(teacher, student)
    expected_row0 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)  # KL(p_T||p_S), not KL(p_S||p_T)
    assert float(kl.detach()) == pytest.approx(expected_row0 / 2)  # batch mean, second row contributes 0
    reverse = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert abs(float(kl.detach()) - reverse / 2) > 1e-3
    kl.backward()
    assert student.grad is not None and float(student.grad.abs().sum()) > 0


def test_kl_temperature_and_weights() -> None:
    teacher = torch.zeros(1, 2)
    student = torch.tensor([[2 * LN3, 0.0]])
    expected = 0.5 * math.log(4 / 3)  # softmax(student / 2) = (0.75, 0.25)
    assert float(kl_teacher_student(teacher, student, temperature=2.0)) == pytest.approx(expected)
    terms = distillation_terms(
        teacher, student, {"rgb": student, "audio": teacher}, 2.0, weight_fused=2.0, weight_unimodal=0.5
    )
    assert set(terms) == {"kd_fused", "kd_rgb", "kd_audio"}
    assert float(terms["kd_fused"]) == pytest.approx(2 * expected)
    assert float(terms["kd_rgb"]) == pytest.approx(0.5 * expected)
    assert float(terms["kd_audio"]) == pytest.approx(0.0, abs=1e-7)


# ---------------------------------------------------------------- DSU and SupCon
def test_dsu_resamples_channel_statistics_only() -> None:
    torch.manual_seed(0)
    h = torch.randn(4, 3, 5, 6) * 2 + 1
    one = h[:1]
    assert dsu_perturb(h, p=0.0) is h and dsu_perturb(one, p=1.0) is one  # B = 1: no batch spread
    out = dsu_perturb(h, p=1.0)
    assert out.shape == h.shape and not torch.allclose(out, h)
    flat_h, flat_o = h.flatten(2), out.flatten(2)  # per (sample, channel) the map is an affine image of h
    zh = (flat_h - flat_h.mean(2, keepdim=True)) / flat_h.std(2, keepdim=True)
    zo = (flat_o - flat_o.mean(2, keepdim=True)) / flat_o.std(2, keepdim=True)
    assert torch.allclose(zh.abs(), zo.abs(), atol=1e-4)


def test_supcon_hand_computed() -> None:
    views = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]], [[0.0, 1.0]]])  # (N=3, V=1, D=2)
    loss = supcon_loss(views, torch.tensor([0, 0, 1]), temperature=1.0)
    assert float(loss) == pytest.approx(math.log(1 + math.exp(-1)))  # anchor 2 has no positive
    two_views = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])  # (2, 2, 2)
    expected = -math.log(math.e / (math.e + 2))  # each anchor: one positive (its other view), two others at 0
    assert float(supcon_loss(two_views, torch.tensor([0, 1]), 1.0)) == pytest.approx(expected)
