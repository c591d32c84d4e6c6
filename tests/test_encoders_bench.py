"""Precision switches (channels-last, bf16 autocast, compile) and ``mbcd bench encoders``."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from mbcd.bench import encoders as bench
from mbcd.cli import main as cli
from mbcd.models import build_encoder
from mbcd.models.precision import Precision, apply_channels_last, compile_encoder, to_channels_last

torch.set_num_threads(1)


def test_precision_from_params_defaults_off_and_type_errors() -> None:
    assert Precision.from_params({"epochs": 1}) == Precision(False, False, False)
    assert Precision.from_params({"amp": True, "channels_last": True}) == Precision(True, True, False)
    with pytest.raises(ValueError, match="train.compile: expected true/false"):
        Precision.from_params({"compile": "yes"})


def test_channels_last_same_result_and_layout() -> None:
    torch.manual_seed(0)
    enc = build_encoder("small3d", "rgb").eval()
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        ref = enc(x)
    Precision(channels_last=True).prepare(enc)
    w = enc.blocks[0][0].weight
    assert w.is_contiguous(memory_format=torch.channels_last_3d) and not w.is_contiguous()
    xc = to_channels_last(x)
    assert xc.is_contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        assert torch.allclose(enc(xc), ref, atol=1e-5)
    audio = apply_channels_last(build_encoder("small2d", "audio"))
    assert audio.blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last)


def test_bf16_autocast_switch() -> None:
    enc = build_encoder("small2d", "audio").eval()
    x = torch.randn(2, 1, 32, 32)
    with Precision(amp=True).autocast("cpu"):
        assert enc.blocks[0][0](x).dtype == torch.bfloat16
    with Precision(amp=False).autocast("cpu"):
        assert enc.blocks[0][0](x).dtype == torch.float32


def test_compile_keeps_the_encoder_api() -> None:
    torch.manual_seed(0)
    enc = build_encoder("small2d", "audio").eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        ref = enc(x)
        compile_encoder(enc, backend="eager")
        h = enc.stem(x)
        assert torch.equal(enc(h, from_stem=True), ref) and torch.equal(enc(x), ref)
    assert "stem" in enc.__dict__ and "trunk" in enc.__dict__
    teacher = copy.deepcopy(enc)  # the weight-averaged teacher is a deepcopy: it must run its own weights
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.5)
        assert not torch.allclose(teacher(x), ref) and torch.equal(enc(x), ref)
    assert set(enc.state_dict()) == set(build_encoder("small2d", "audio").state_dict())


def test_bench_cpu_writes_rows(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    rc = cli(["bench", "encoders", "--encoders", "small3d", "small2d", "--batch", "2", "--repeats", "1", "--warmup", "0", "--json", str(out)])  # fmt: skip
    assert rc == 0
    rows = json.loads(out.read_text())
    assert [(r["encoder"], r["modality"]) for r in rows] == [
        ("small3d", "rgb"),
        ("small3d", "flow"),
        ("small2d", "audio"),
    ]
    assert all(r["ms_per_clip"] > 0 and r["params"] > 0 and r["size"] == "study default" for r in rows)
    assert rows[0]["shape"] == [3, 8, 48, 48] and rows[2]["shape"] == [1, 129, 100]
    assert "ms_per_clip=" in capsys.readouterr().out


def test_bench_cases_reduce_paper_backbones() -> None:
    cases = {(n, m): (s, lab) for n, m, s, lab in bench.cpu_cases(["slowfast_r101", "slowonly_r50_flow", "r3d_18"])}
    assert cases[("slowfast_r101", "rgb")][0] == (3, 32, 64, 64) and "reduced" in cases[("slowfast_r101", "rgb")][1]
    assert cases[("r3d_18", "flow")] == ((2, 8, 48, 48), "study default")


def test_bench_rejects_unknown_encoder_and_missing_gpu() -> None:
    with pytest.raises(SystemExit):
        bench.main(["--encoders", "nope"])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            bench.main(["--paper"])


def test_paper_mode_runs_at_tiny_size_on_cpu() -> None:
    sizes = {"rgb": ("small3d", (3, 8, 16, 16)), "audio": ("small2d", (1, 32, 32))}
    rows = bench.bench_paper(torch.device("cpu"), 2, sizes, repeats=1, warmup=0)
    assert len(rows) == 2 * 3 * 2  # regimes x (each alone + all together) x precisions
    assert {r["encoders"] for r in rows} == {"small3d", "small2d", "small3d+small2d"}
    assert {(r["regime"], r["precision"]) for r in rows} == {
        (a, b) for a in ("protocol", "full") for b in ("fp32", "bf16")
    }
    assert all(r["step_s"] > 0 for r in rows)
    rows = bench.bench_paper(torch.device("cpu"), 2, sizes, 1, 0, ("fp32",), ("protocol",), channels_last=True)
    assert len(rows) == 3 and all(r["channels_last"] and r["step_s"] > 0 for r in rows)


def test_protocol_step_trains_only_the_trunk() -> None:
    torch.manual_seed(0)
    enc = build_encoder("small3d", "rgb").train()
    enc.freeze_stem()
    before = {k: v.clone() for k, v in enc.named_parameters()}
    opt = torch.optim.SGD([p for p in enc.parameters() if p.requires_grad], lr=0.1)
    bench._paper_step({"rgb": enc}, {"rgb": torch.randn(2, 3, 8, 16, 16)}, opt, "protocol", False, "cpu")()
    changed = {k for k, v in enc.named_parameters() if not torch.equal(v, before[k])}
    assert changed and changed <= set(enc.trunk_parameter_names())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run with -m gpu on a GPU machine)")
def test_paper_backbones_on_gpu_bf16_uses_less_memory() -> None:
    sizes = {m: (name, (shape[0], shape[1] // 2, *shape[2:])) if m != "audio" else (name, shape) for m, (name, shape) in bench.PAPER.items()}  # fmt: skip
    rows = bench.bench_paper(torch.device("cuda"), 2, sizes, 1, 1, ("fp32", "bf16"), ("full",))
    by = {(r["encoders"], r["precision"]): r for r in rows}
    for enc in ("slowfast_r101", "slowonly_r50_flow", "vggsound_resnet18"):
        assert by[(enc, "fp32")]["step_s"] > 0 and by[(enc, "bf16")]["peak_gib"] < by[(enc, "fp32")]["peak_gib"]
