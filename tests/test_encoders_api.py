"""The encoder contract: every registered encoder x modality builds, has its declared out_dim, and its
stem/trunk split reproduces the full forward exactly; freezing and bad input fail or behave as documented."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mbcd.models import IN_CHANNELS, Encoder, build_encoder
from mbcd.registries import load

torch.set_num_threads(1)

# Tiny inputs per modality; SlowFast needs T a multiple of its resample rate (4), 32 as in the protocol.
TINY = {"rgb": (2, 3, 8, 32, 32), "flow": (2, 2, 8, 32, 32), "audio": (2, 1, 64, 48)}
TINY_BY_NAME = {("slowfast_r101", "rgb"): (2, 3, 32, 32, 32), ("slowfast_r101", "flow"): (2, 2, 32, 32, 32)}
EXPECTED_DIM = {"slowfast_r101": 2304, "slowonly_r50_flow": 2048, "vggsound_resnet18": 512, "r3d_18": 512}


def _cases() -> list[tuple[str, str]]:
    reg = load("encoder")
    return [(name, mod) for name in reg.names() for mod in reg.get(name).MODALITIES]


def test_registry_holds_the_issue_encoders() -> None:
    names = set(load("encoder").names())
    wanted = {"small3d", "small2d", "r3d_18", "r2plus1d_18", "mc3_18", "resnet18_audio"}
    assert wanted | {"slowfast_r101", "slowonly_r50_flow", "vggsound_resnet18"} <= names


@pytest.mark.parametrize(("name", "modality"), _cases())
def test_forward_out_dim_and_exact_split(name: str, modality: str) -> None:
    torch.manual_seed(0)
    enc = build_encoder(name, modality).eval()
    assert isinstance(enc, Encoder) and enc.modality == modality
    assert enc.out_dim == EXPECTED_DIM.get(name, enc.out_dim)
    first_conv = next(m for m in enc.modules() if isinstance(m, nn.Conv2d | nn.Conv3d))
    assert first_conv.in_channels == IN_CHANNELS[modality]
    x = torch.randn(TINY_BY_NAME.get((name, modality), TINY[modality]))
    with torch.no_grad():
        y = enc(x)
        h = enc.stem(x)
        y_split = enc(h, from_stem=True)
    assert y.shape == (x.shape[0], enc.out_dim)
    assert torch.isfinite(y).all()
    assert not torch.equal(y[0], y[1])  # depends on the input
    assert torch.equal(y, y_split)
    assert torch.equal(enc.trunk(h), y)
    trunk = enc.trunk_parameter_names()
    assert trunk and all("layer4" in n or n.startswith("last.") for n in trunk)
    assert set(trunk).isdisjoint(enc.stem_parameter_names())
    assert len(trunk) + len(enc.stem_parameter_names()) == len(list(enc.parameters()))


def test_small_encoders_defaults() -> None:
    assert build_encoder("small3d", "rgb").out_dim == 96
    assert build_encoder("small3d", "flow", width=8).out_dim == 64
    assert build_encoder("small2d", "audio", width=16).out_dim == 128


def test_freeze_stem_gradients_and_bn_stats() -> None:
    torch.manual_seed(0)
    enc = build_encoder("small3d", "rgb")
    enc.freeze_stem(freeze_bn_stats=True)
    enc.train()
    trunk = set(enc.trunk_parameter_names())
    for n, p in enc.named_parameters():
        assert p.requires_grad == (n in trunk), n
    stem_bn = enc.blocks[0][1]
    trunk_bn = enc.last[1]
    assert not stem_bn.training and trunk_bn.training
    before_stem, before_trunk = stem_bn.running_mean.clone(), trunk_bn.running_mean.clone()
    enc(torch.randn(TINY["rgb"])).sum().backward()
    assert torch.equal(stem_bn.running_mean, before_stem)  # frozen statistics
    assert not torch.equal(trunk_bn.running_mean, before_trunk)
    grads = {n for n, p in enc.named_parameters() if p.grad is not None}
    assert grads == trunk


def test_freeze_stem_keeps_bn_stats_updating_by_default() -> None:
    enc = build_encoder("vggsound_resnet18", "audio")
    enc.freeze_stem()
    enc.train()
    before = enc.bn1.running_mean.clone()
    enc(torch.randn(TINY["audio"]))
    assert enc.bn1.training and not torch.equal(enc.bn1.running_mean, before)
    assert not enc.conv1.weight.requires_grad and enc.layer4[0].conv1.weight.requires_grad


def test_slowfast_trunk_is_both_last_stages() -> None:
    enc = build_encoder("slowfast_r101", "rgb")
    names = enc.trunk_parameter_names()
    assert any(n.startswith("slow_path.layer4.") for n in names)
    assert any(n.startswith("fast_path.layer4.") for n in names)
    assert not any("lateral" in n for n in names)  # laterals (incl. layer3_lateral) are stem, as frozen_stages=3


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("nope3d", "rgb"), "unknown encoder 'nope3d'"),
        (("small3d", "depth"), "unknown modality 'depth'"),
        (("small2d", "rgb"), "does not take modality 'rgb'"),
        (("vggsound_resnet18", "flow"), "does not take modality 'flow'"),
    ],
)
def test_build_errors_name_the_problem(args: tuple[str, str], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        build_encoder(*args)


def test_bad_encoder_args() -> None:
    with pytest.raises(ValueError, match="encoder_args"):
        build_encoder("small3d", "rgb", widht=8)
    with pytest.raises(ValueError, match="width must be >= 1"):
        build_encoder("small3d", "rgb", width=0)


@pytest.mark.parametrize(
    ("name", "modality", "shape", "needle"),
    [
        ("small3d", "flow", (2, 3, 8, 32, 32), r"expected input \(B, 2, T, H, W\)"),
        ("small2d", "audio", (2, 64, 48), r"expected input \(B, 1, F, T\)"),
        ("slowfast_r101", "rgb", (1, 3, 30, 32, 32), "T a multiple of 4"),
        ("slowonly_r50_flow", "flow", (1, 3, 8, 32, 32), r"\(B, 2, T, H, W\)"),
        ("r3d_18", "flow", (1, 3, 8, 32, 32), r"\(B, 2, T, H, W\)"),
    ],
)
def test_bad_input_shape(name: str, modality: str, shape: tuple[int, ...], needle: str) -> None:
    enc = build_encoder(name, modality)
    with pytest.raises(ValueError, match=needle):
        enc(torch.randn(shape))


@pytest.mark.parametrize(("name", "modality"), [("small3d", "flow"), ("vggsound_resnet18", "audio")])
def test_lookahead_on_cached_stem_with_shifted_trunk(name: str, modality: str) -> None:
    """What MBCD's look-ahead does: re-run only the trunk at theta' on the cached stem output."""
    from torch.func import functional_call

    torch.manual_seed(0)
    enc = build_encoder(name, modality).eval()
    enc.freeze_stem()
    x = torch.randn(TINY[modality])
    with torch.no_grad():
        h = enc.stem(x)
    params = dict(enc.named_parameters())
    shifted = {n: params[n] - 1e-2 * torch.ones_like(params[n]) for n in enc.trunk_parameter_names()}
    y0 = enc(h, from_stem=True)
    y1 = functional_call(enc, shifted, (h,), {"from_stem": True})
    assert y1.shape == y0.shape and not torch.allclose(y0, y1)
    y1.sum().backward()
    trunk = set(enc.trunk_parameter_names())  # the gradient at theta' reaches theta through the shift
    assert {n for n, p in params.items() if p.grad is not None} == trunk


def test_small_encoders_take_a_norm_layer_by_name() -> None:
    """``norm: group`` (per-sample statistics) and ``none`` build the same shapes; an unknown name is refused."""
    from mbcd.models.small import Small2D, Small3D

    x = torch.randn(2, 3, 8, 32, 32)
    for norm in ("batch", "group", "none"):
        enc = Small3D("rgb", width=4, norm=norm)
        assert enc.trunk(enc.stem(x)).shape == (2, enc.out_dim)
    with pytest.raises(ValueError, match="norm 'layer' is not allowed; expected one of: batch, group, none"):
        Small2D("audio", norm="layer")
