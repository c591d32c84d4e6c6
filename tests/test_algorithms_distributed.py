"""Two gloo processes on CPU: AMD's s_k are summed over ranks before r_k (every rank draws from the same p_k),
and GCC's first-order inner gradient is averaged, so θ' equals the single-process look-ahead on the global batch."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from mbcd.algorithms.components.amd import AdaptiveModalityDropout
from mbcd.algorithms.components.gcc import lookahead


def _data() -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, nn.Linear]:
    g = torch.Generator().manual_seed(0)
    logits = {"rgb": torch.randn(8, 3, generator=g) * 3, "audio": torch.randn(8, 3, generator=g)}
    x, t = torch.randn(8, 3, generator=g, dtype=torch.float64), torch.randn(8, 2, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    return logits, x, t, nn.Linear(3, 2).double()


def _single_process() -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    logits, x, t, model = _data()
    _, stats = AdaptiveModalityDropout({"mode": "adaptive"})(logits)
    loss = ((model(x) - t) ** 2).sum(1).mean()
    shifted = lookahead(loss, dict(model.named_parameters()), alpha=0.1, order=1)
    return stats, {k: v.detach() for k, v in shifted.items()}


def _worker(rank: int, port: int, queue: mp.Queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        logits, x, t, model = _data()
        shard = slice(4 * rank, 4 * rank + 4)
        _, stats = AdaptiveModalityDropout({"mode": "adaptive"})({m: v[shard] for m, v in logits.items()})
        loss = ((model(x[shard]) - t[shard]) ** 2).sum(1).mean()
        shifted = lookahead(loss, dict(model.named_parameters()), alpha=0.1, order=1)
        queue.put((rank, stats, {k: v.detach() for k, v in shifted.items()}))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_agree_with_one_process_on_the_global_batch() -> None:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    ref_stats, ref_shift = _single_process()
    for _, stats, shifted in results:
        for key, value in ref_stats.items():
            assert abs(stats[key] - value) < 1e-5, (key, stats[key], value)
        for name, tensor in ref_shift.items():
            assert torch.allclose(shifted[name], tensor, atol=1e-10), name
