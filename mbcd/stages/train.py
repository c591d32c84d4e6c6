"""``mbcd train``: train one (dataset, experiment, algorithm, modality set, seed) run into a run directory.

Reads the split manifests (``--splits DIR`` with train/val/test.tsv) and the extraction caches
(``--caches DIR/<domain>/<modality>``) and writes the run directory of docs/contracts.md: ``params.json``,
``metrics.jsonl``, ``checkpoint.pt`` (every epoch), ``selected.pt`` and ``train.log``. A rerun on an existing
run directory resumes from its checkpoint. Data-parallel on CPU or GPU::

    torchrun --nproc_per_node 2 -m mbcd.stages.train --params P ...   # each rank takes its share of a batch
"""

from __future__ import annotations

import sys
from pathlib import Path

from mbcd.config import ParamsError
from mbcd.experiments import Run
from mbcd.modality import format_modality_set, parse_modality_set
from mbcd.stages.common import StageError, load, parser, run_stage


def build_parser():
    p = parser("train", __doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, help="a dataset of params.datasets")
    p.add_argument("--experiment", required=True, help="ms_<target> or ss_<source>")
    p.add_argument("--algorithm", required=True, help="a registered algorithm or an ablation name")
    p.add_argument("--modalities", required=True, help="modality set, e.g. rgb+flow+audio")
    p.add_argument("--seed", type=int, required=True, help="the run's seed index (the RNG seed is derived)")
    p.add_argument("--splits", required=True, type=Path, help="folder with train.tsv, val.tsv, test.tsv")
    p.add_argument("--caches", required=True, type=Path, help="data/cache/<dataset> (per domain and modality)")
    p.add_argument("--out", required=True, type=Path, help="the run directory")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> None:
        from mbcd.engine.loop import run_training

        params = load(args)
        try:
            mods = format_modality_set(parse_modality_set(args.modalities))
        except ValueError as err:
            raise StageError(f"--modalities: {err}") from None
        if args.algorithm not in params["algorithms"] and args.algorithm not in params.get("ablations", {}):
            raise ParamsError(f"--algorithm: {args.algorithm!r} is neither in params algorithms nor ablations")
        run = Run(args.dataset, args.experiment, mods, args.algorithm, args.seed)
        try:
            run_training(params, run, args.splits, args.caches, args.out)
        except ValueError as err:  # an unknown experiment, a batch the algorithm rejects, ...
            raise StageError(f"{run.identity}: {err}") from err

    return run_stage(body)


if __name__ == "__main__":
    sys.exit(main())
