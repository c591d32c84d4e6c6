"""``mbcd generate``: write the bundled benchmark (real mp4 files), ``labels.tsv`` and its data card.

Reads ``generator`` (size preset, seed, number of classes) and ``datasets.<name>.domains`` from the params.
The output folder is written atomically: a temporary sibling renamed into place when every clip is written.
"""

from __future__ import annotations

import os
from pathlib import Path

from mbcd.config import load_params
from mbcd.data.manifest import atomic_dir
from mbcd.data.synth import generate
from mbcd.stages.common import StageError, parser, run_stage


def main(argv: list[str] | None = None) -> int:
    p = parser("generate", __doc__ or "")
    p.add_argument("--dataset", default="synth", help="a key of params datasets whose adapter is 'synth'")
    p.add_argument("--out", required=True, help="output folder, e.g. data/raw/synth")
    p.add_argument("--threads", type=int, default=1, help="worker processes (default 1)")
    args = p.parse_args(argv)

    def body() -> None:
        params = load_params(args.params, check_registries=False)  # the generator needs no model registries
        block = params["datasets"].get(args.dataset)
        if block is None or block["adapter"] != "synth":
            raise StageError(f"--dataset {args.dataset!r}: params needs datasets.{args.dataset} with adapter: synth")
        if args.threads < 1:
            raise StageError(f"--threads {args.threads}: must be at least 1")
        threads = min(args.threads, os.cpu_count() or 1)
        with atomic_dir(Path(args.out)) as tmp:
            card = generate(params, list(block["domains"]), tmp, threads)
        counts = ", ".join(f"{d} {c['train']}/{c['test']}" for d, c in card["counts"].items())
        print(
            f"generate {args.dataset}: {card['n_clips']} clips (train/test {counts}) -> {args.out} in {card['seconds']} s"
        )

    return run_stage(body)
