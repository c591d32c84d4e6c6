"""The paper's backbones against the public checkpoints' layout, and strict loading.

The public files cannot be downloaded here, so each test writes a file with the public key names and shapes,
generated *independently of our modules* from the architecture (mmaction2's naming: ``backbone.`` +
``conv1.conv.weight``, ``layer3.22.conv2.bn.running_var``, ``slow_path.layer1_lateral.conv.weight`` ...;
VGGSound's ``audnet.`` + torchvision ResNet names), in the file's container format, and loads it strictly.
Values are one constant per key (stored as stride-0 tensors, so a 62M-parameter file is a few kB), which
checks that every key lands in the right parameter.

Parameter counts: the mmaction2 0.x model-zoo metafiles (configs/recognition/slowfast/metafile.yml and
configs/recognition/slowonly/metafile.yml, branch 0.x) publish, for these exact checkpoints, 62,912,312
(slowfast_r101_8x8x1_256e_kinetics400_rgb) and 32,450,960 (slowonly_r50_8x8x1_256e_kinetics400_flow),
counting the 400-class classifier head. torchvision documents ResNet-18 at 11,689,512 (3-channel, 1000 classes).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models import resnet18
from torchvision.models import video as tvv

from mbcd.models import CheckpointError, build_encoder, load_pretrained

torch.set_num_threads(1)

Shape = tuple[int, ...]
BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _conv_bn(prefix: str, cin: int, cout: int, k: Shape, bn: bool = True, names: tuple[str, str] = ("conv", "bn")) -> dict[str, Shape]:  # fmt: skip
    conv, norm = names
    keys: dict[str, Shape] = {f"{prefix}{conv}.weight": (cout, cin, *k)}
    if bn:
        keys |= {f"{prefix}{norm}.{p}": (cout,) for p in ("weight", "bias", "running_mean", "running_var")}
        keys[f"{prefix}{norm}.num_batches_tracked"] = ()
    return keys


def mmaction_pathway(prefix: str, depth: int, cin: int, base: int, kt1: int, inflate: Shape, lateral: bool) -> dict[str, Shape]:  # fmt: skip
    """Keys/shapes of mmaction2's ResNet3dPathway (ResNet3dSlowOnly = one non-lateral pathway)."""
    blocks, ratio, fk = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}[depth], 8, 7
    keys = _conv_bn(f"{prefix}conv1.", cin, base, (kt1, 7, 7))
    if lateral:
        keys |= _conv_bn(f"{prefix}conv1_lateral.", base // ratio, 2 * base // ratio, (fk, 1, 1), bn=False)
    inplanes = base
    for i, n in enumerate(blocks):
        planes = base * 2**i
        for b in range(n):
            c_in = inplanes + (2 * inplanes // ratio if lateral else 0) if b == 0 else 4 * planes
            p = f"{prefix}layer{i + 1}.{b}."
            keys |= _conv_bn(p + "conv1.", c_in, planes, (3 if inflate[i] else 1, 1, 1))
            keys |= _conv_bn(p + "conv2.", planes, planes, (1, 3, 3))
            keys |= _conv_bn(p + "conv3.", planes, 4 * planes, (1, 1, 1))
            if b == 0:
                keys |= _conv_bn(p + "downsample.", c_in, 4 * planes, (1, 1, 1))
        inplanes = 4 * planes
        if lateral and i < 3:
            keys |= _conv_bn(f"{prefix}layer{i + 1}_lateral.", inplanes // ratio, 2 * inplanes // ratio, (fk, 1, 1), bn=False)  # fmt: skip
    return keys


def slowfast_r101_keys() -> dict[str, Shape]:
    keys = mmaction_pathway("backbone.slow_path.", 101, 3, 64, 1, (0, 0, 1, 1), lateral=True)
    keys |= mmaction_pathway("backbone.fast_path.", 101, 3, 8, 5, (1, 1, 1, 1), lateral=False)
    return keys | {"cls_head.fc_cls.weight": (400, 2304), "cls_head.fc_cls.bias": (400,)}


def slowonly_flow_keys() -> dict[str, Shape]:
    keys = mmaction_pathway("backbone.", 50, 2, 64, 1, (0, 0, 1, 1), lateral=False)
    return keys | {"cls_head.fc_cls.weight": (400, 2048), "cls_head.fc_cls.bias": (400,)}


def vggsound_keys(prefix: str = "audnet.") -> dict[str, Shape]:
    """hche11/VGGSound ResNet-18 (1-channel conv1, BasicBlocks, 309-class fc)."""
    keys = _conv_bn(prefix, 1, 64, (7, 7), names=("conv1", "bn1"))
    inplanes = 64
    for i, planes in enumerate((64, 128, 256, 512)):
        for b in range(2):
            p, c_in = f"{prefix}layer{i + 1}.{b}.", inplanes if b == 0 else planes
            keys |= _conv_bn(p, c_in, planes, (3, 3), names=("conv1", "bn1"))
            keys |= _conv_bn(p, planes, planes, (3, 3), names=("conv2", "bn2"))
            if b == 0 and i > 0:
                keys |= _conv_bn(p + "downsample.", c_in, planes, (1, 1), names=("0", "1"))
        inplanes = planes
    return keys | {f"{prefix}fc.weight": (309, 512), f"{prefix}fc.bias": (309,)}


def n_params(keys: dict[str, Shape], skip: str = "cls_head.") -> int:
    total = 0
    for k, shape in keys.items():
        if not k.endswith(BN_BUFFERS) and not k.startswith(skip):
            total += int(torch.tensor(shape).prod()) if shape else 1
    return total


def constant_state(keys: dict[str, Shape]) -> dict[str, torch.Tensor]:
    """One distinct constant per key, as stride-0 tensors (tiny files)."""
    out = {}
    for i, (k, shape) in enumerate(sorted(keys.items())):
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(i, dtype=torch.long)
        else:
            out[k] = torch.tensor(float(i)).expand(shape)
    return out


def save_mmaction(path: Path, state: dict) -> Path:
    torch.save({"meta": {"mmcv_version": "1.2.7", "epoch": 256}, "state_dict": state}, path)
    return path


def save_vggsound(path: Path, state: dict) -> Path:
    torch.save({"epoch": 30, "model_state_dict": state}, path)
    return path


@pytest.fixture(scope="module")
def slowfast():
    return build_encoder("slowfast_r101", "rgb")


@pytest.fixture(scope="module")
def slowonly():
    return build_encoder("slowonly_r50_flow", "flow")


@pytest.fixture(scope="module")
def vggsound():
    return build_encoder("vggsound_resnet18", "audio")


def _params(enc) -> int:
    return sum(p.numel() for p in enc.parameters())


def test_param_counts_match_formula_and_model_zoo(slowfast, slowonly, vggsound) -> None:
    head_sf, head_so = 2304 * 400 + 400, 2048 * 400 + 400
    assert _params(slowfast) == n_params(slowfast_r101_keys()) == 62_912_312 - head_sf == 61_990_312
    assert _params(slowonly) == n_params(slowonly_flow_keys()) == 32_450_960 - head_so == 31_631_360
    rgb_conv1, fc = 64 * 3 * 7 * 7, 512 * 1000 + 1000  # torchvision ResNet-18: 3-channel conv1, 1000-way fc
    assert _params(vggsound) == n_params(vggsound_keys(), skip="audnet.fc.") == 11_689_512 - fc - rgb_conv1 + 64 * 49
    assert (slowfast.out_dim, slowonly.out_dim, vggsound.out_dim) == (2304, 2048, 512)


@pytest.mark.parametrize(
    ("fixture", "keys", "save", "ignored"),
    [
        ("slowfast", slowfast_r101_keys, save_mmaction, "cls_head."),
        ("slowonly", slowonly_flow_keys, save_mmaction, "cls_head."),
        ("vggsound", vggsound_keys, save_vggsound, "audnet.fc."),
    ],
)
def test_public_layout_loads_strictly(request, tmp_path: Path, fixture: str, keys, save, ignored: str) -> None:
    enc = request.getfixturevalue(fixture)
    state = constant_state(keys())
    path = save(tmp_path / "ckpt.pth", state)
    assert path.stat().st_size < 2_000_000  # stride-0 tensors
    load_pretrained(enc, path)
    own = enc.state_dict()
    prefix = "backbone." if ignored == "cls_head." else "audnet."
    loaded = 0
    for k, v in state.items():
        if k.startswith(ignored):
            continue
        got = own[k[len(prefix) :]]
        assert got.shape == v.shape and bool((got == v).all()), k
        loaded += 1
    assert loaded == len(own)


def _expect_error(enc, path: Path, *needles: str) -> str:
    before = {k: v.clone() for k, v in list(enc.state_dict().items())[:3]}
    with pytest.raises(CheckpointError) as info:
        load_pretrained(enc, path)
    msg = str(info.value)
    assert str(path) in msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    for k, v in before.items():  # a failed load changes nothing
        assert torch.equal(enc.state_dict()[k], v)
    return msg


def test_renamed_key_is_named(tmp_path: Path, slowonly, slowfast) -> None:
    state = constant_state(slowonly_flow_keys())
    state["backbone.layer4.2.conv3.bn.wieght"] = state.pop("backbone.layer4.2.conv3.bn.weight")
    msg = _expect_error(
        slowonly, save_mmaction(tmp_path / "a.pth", state), "1 missing key(s): layer4.2.conv3.bn.weight"
    )
    assert "1 unexpected key(s): layer4.2.conv3.bn.wieght" in msg
    state = constant_state(slowfast_r101_keys())
    state["backbone.slow_path.layer2_lateral.conv.weight_x"] = state.pop(
        "backbone.slow_path.layer2_lateral.conv.weight"
    )
    _expect_error(slowfast, save_mmaction(tmp_path / "b.pth", state), "slow_path.layer2_lateral.conv.weight")


def test_changed_shape_is_named(tmp_path: Path, slowonly, vggsound) -> None:
    state = constant_state(slowonly_flow_keys())
    state["backbone.conv1.conv.weight"] = torch.zeros(64, 3, 1, 7, 7)  # an RGB SlowOnly file for the flow encoder
    _expect_error(
        slowonly,
        save_mmaction(tmp_path / "a.pth", state),
        "conv1.conv.weight (file (64, 3, 1, 7, 7), model (64, 2, 1, 7, 7))",
    )
    state = constant_state(vggsound_keys())
    state["audnet.layer3.0.downsample.0.weight"] = torch.zeros(256, 128, 3, 3)
    _expect_error(
        vggsound, save_vggsound(tmp_path / "b.pth", state), "1 shape mismatch(es): layer3.0.downsample.0.weight"
    )


def test_wrong_file_kind_and_missing_file(tmp_path: Path, vggsound, slowonly) -> None:
    _expect_error(vggsound, tmp_path / "absent.pth", "not found")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"this is not a checkpoint")
    _expect_error(vggsound, bad, "not a readable PyTorch checkpoint")
    torch.save({"epoch": 3}, tmp_path / "empty.pth")
    _expect_error(vggsound, tmp_path / "empty.pth", "no state dict of tensors")
    # a VGGSound file offered to the flow encoder: every key is reported, with the count
    path = save_vggsound(tmp_path / "h.pth.tar", constant_state(vggsound_keys()))
    _expect_error(
        slowonly, path, "missing key(s): conv1.conv.weight", "unexpected key(s): ", "audnet.conv1.weight", "more"
    )


def test_old_file_without_bn_counters_and_dataparallel_prefix(tmp_path: Path, vggsound) -> None:
    keys = {"module." + k: s for k, s in vggsound_keys().items() if not k.endswith("num_batches_tracked")}
    load_pretrained(vggsound, save_vggsound(tmp_path / "h.pth.tar", constant_state(keys)))
    assert float(vggsound.conv1.weight.detach()[0, 0, 0, 0]) == sorted(keys).index("module.audnet.conv1.weight")


@pytest.mark.parametrize(("name", "builder"), [("r3d_18", tvv.r3d_18), ("r2plus1d_18", tvv.r2plus1d_18)])
def test_torchvision_video_state_dict_loads_with_flow_stem_average(tmp_path: Path, name: str, builder) -> None:
    torch.manual_seed(0)
    ref = builder(weights=None).state_dict()
    path = tmp_path / f"{name}.pth"
    torch.save(ref, path)
    for modality in ("rgb", "flow"):
        enc = build_encoder(name, modality)
        load_pretrained(enc, path)
        own = enc.state_dict()
        assert len(own) == len(ref) - 2  # fc.weight, fc.bias ignored
        for k, v in ref.items():
            if k.startswith("fc."):
                continue
            want = v.mean(dim=1, keepdim=True).expand(-1, 2, *v.shape[2:]) if (k == "stem.0.weight" and modality == "flow") else v  # fmt: skip
            assert torch.equal(own["net." + k], want), (modality, k)


def test_torchvision_resnet18_loads_into_audio_encoder(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = resnet18(weights=None).state_dict()
    torch.save(ref, tmp_path / "resnet18.pth")
    enc = build_encoder("resnet18_audio", "audio")
    load_pretrained(enc, tmp_path / "resnet18.pth")
    assert torch.equal(enc.net.conv1.weight, ref["conv1.weight"].mean(dim=1, keepdim=True))
    assert torch.equal(enc.net.layer4[1].bn2.running_var, ref["layer4.1.bn2.running_var"])
    ref["layer1.0.conv1.weight"] = torch.zeros(64, 64, 5, 5)
    torch.save(ref, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"net\.layer1\.0\.conv1\.weight \(file \(64, 64, 5, 5\)"):
        load_pretrained(enc, tmp_path / "bad.pth")


def test_own_encoder_state_dict_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = build_encoder("small3d", "flow")
    torch.save(src.state_dict(), tmp_path / "small.pth")
    dst = build_encoder("small3d", "flow")
    load_pretrained(dst, tmp_path / "small.pth")
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values(), strict=True))
    wide = build_encoder("small3d", "flow", width=16)
    with pytest.raises(
        CheckpointError, match=r"small\.pth \(encoder state_dict.*shape mismatch\(es\): blocks\.0\.0\.weight"
    ):
        load_pretrained(wide, tmp_path / "small.pth")
