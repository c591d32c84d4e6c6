"""``mbcd bench encoders``: forward+backward time per clip of every registered encoder.

CPU mode (default): each encoder at the study's default sizes (rgb/flow 8x48x48, audio 129x100 = 8 kHz,
1 s, window 256, overlap 176); the paper backbones at a reduced clip (SlowFast 32x64x64 instead of
32x224x224, SlowOnly 8x64x64 instead of 8x224x224) because the full clip takes seconds per clip on a CPU.
All parameters train (from-scratch regime).

``--paper`` (GPU): the paper configuration, batch 16, SlowFast-R101 on 32x224x224 RGB, SlowOnly-R50 on 8x224x224
flow, VGGSound ResNet-18 on 257x1004 spectrograms, each alone and all three in one step, in fp32 and bf16
autocast, in the protocol's regime (frozen stem run without gradient, last stage trained) and with every
parameter trained; reports step time (forward, backward, SGD step) and ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mbcd.models import build_encoder
from mbcd.models.precision import Precision, autocast
from mbcd.registries import load

STUDY = {"rgb": (3, 8, 48, 48), "flow": (2, 8, 48, 48), "audio": (1, 129, 100)}
CPU_REDUCED = {"slowfast_r101": {"rgb": (3, 32, 64, 64)}, "slowonly_r50_flow": {"flow": (2, 8, 64, 64)}}
PAPER = {"rgb": ("slowfast_r101", (3, 32, 224, 224)), "flow": ("slowonly_r50_flow", (2, 8, 224, 224))}
PAPER["audio"] = ("vggsound_resnet18", (1, 257, 1004))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_it(step: Callable[[], None], device: torch.device, repeats: int, warmup: int) -> float:
    """Median wall time of ``step`` in seconds after ``warmup`` untimed calls."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cpu_cases(names: list[str]) -> list[tuple[str, str, tuple[int, ...], str]]:
    """(encoder, modality, per-clip shape, size label) for every registered encoder and modality it takes."""
    reg = load("encoder")
    cases = []
    for name in names:
        for mod in reg.get(name).MODALITIES:
            reduced = CPU_REDUCED.get(name, {}).get(mod)
            label = "reduced (paper clip too slow on CPU)" if reduced else "study default"
            cases.append((name, mod, reduced or STUDY[mod], label))
    return cases


def _print(row: dict) -> None:
    print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)


def bench_cpu(names: list[str], batch: int, repeats: int, warmup: int, report: Callable = _print) -> list[dict]:
    """Forward+backward (all parameters) per clip on CPU; each row is reported as soon as it is measured."""
    device, rows = torch.device("cpu"), []
    for name, mod, shape, label in cpu_cases(names):
        enc = build_encoder(name, mod).train()
        x = torch.randn(batch, *shape)

        def step(enc: torch.nn.Module = enc, x: torch.Tensor = x) -> None:
            enc.zero_grad(set_to_none=True)
            enc(x).float().pow(2).mean().backward()

        sec = time_it(step, device, repeats, warmup)
        n = sum(p.numel() for p in enc.parameters())
        rows.append({"encoder": name, "modality": mod, "shape": list(shape), "size": label, "batch": batch,
                     "params": n, "step_s": sec, "ms_per_clip": 1000 * sec / batch})  # fmt: skip
        report(rows[-1])
    return rows


def _paper_step(encs: dict, xs: dict, opt: torch.optim.Optimizer, regime: str, amp: bool, device) -> Callable:
    """One training step over the given encoders: frozen stem under no_grad (protocol) or everything."""

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(device, amp):
            feats = []
            for mod, enc in encs.items():
                if regime == "protocol":
                    with torch.no_grad():
                        h = enc.stem(xs[mod])
                    feats.append(enc(h, from_stem=True))
                else:
                    feats.append(enc(xs[mod]))
            loss = sum(f.float().pow(2).mean() for f in feats)
        loss.backward()
        opt.step()

    return step


def bench_paper(device: torch.device, batch: int, sizes: dict, repeats: int, warmup: int,
                precisions: tuple[str, ...] = ("fp32", "bf16"), regimes: tuple[str, ...] = ("protocol", "full"),
                report: Callable = _print, channels_last: bool = False) -> list[dict]:  # fmt: skip
    """Step time and peak memory of the paper backbones, alone and all together, per precision and regime."""
    prep = Precision(channels_last=channels_last)
    encs = {m: prep.prepare(build_encoder(name, m).to(device).train()) for m, (name, _) in sizes.items()}
    xs = {m: prep.input(torch.randn(batch, *shape, device=device)) for m, (_, shape) in sizes.items()}
    groups = [(m,) for m in sizes] + [tuple(sizes)]
    rows = []
    for regime in regimes:
        for mods in groups:
            sub = {m: encs[m] for m in mods}
            for enc in sub.values():
                enc.requires_grad_(True)
                if regime == "protocol":
                    enc.freeze_stem()
            params = [p for e in sub.values() for p in e.parameters() if p.requires_grad]
            opt = torch.optim.SGD(params, lr=1e-6, momentum=0.9)
            for prec in precisions:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(device)
                step = _paper_step(sub, xs, opt, regime, prec == "bf16", device)
                try:
                    sec = time_it(step, device, repeats, warmup)
                except torch.OutOfMemoryError:
                    sec = float("nan")  # reported as step_s=nan with the peak reached
                peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
                rows.append({"encoders": "+".join(sizes[m][0] for m in mods), "regime": regime, "precision": prec,
                             "batch": batch, "channels_last": channels_last, "step_s": sec, "peak_gib": peak})  # fmt: skip
                report(rows[-1])
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mbcd bench encoders", description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=None, help="clips per step (default: 4 on CPU, 16 with --paper)")
    p.add_argument("--repeats", type=int, default=3, help="timed steps (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--encoders", nargs="+", default=None, help="registered names (default: all)")
    p.add_argument("--paper", action="store_true", help="paper configuration on a GPU (fp32 and bf16)")
    p.add_argument("--channels-last", action="store_true", help="--paper: channels-last weights and inputs")
    p.add_argument("--device", default="cuda", help="device for --paper (default: cuda)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.encoders or load("encoder").names()
    unknown = [n for n in names if n not in load("encoder")]
    if unknown:
        p.error(f"--encoders: unknown {unknown[0]!r}; registered: {', '.join(load('encoder').names())}")
    if args.paper:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            p.error("--paper needs a CUDA device (none found); run it on a GPU machine")
        rows = bench_paper(device, args.batch or 16, PAPER, args.repeats, args.warmup, channels_last=args.channels_last)
    else:
        rows = bench_cpu(names, args.batch or 4, args.repeats, args.warmup)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0
