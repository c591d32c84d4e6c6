"""``mbcd analyse``: one of the paper's analyses (method.md §9) over a study's trained multi-source runs.

One job covers one (analysis, dataset, modality set): every multi-source experiment (held-out target domain),
every algorithm of ``experiments.algorithms`` and every seed — plus, for ``imbalance``, the uni-modal runs of
each modality of the set. Each run's selected model is rebuilt exactly as ``mbcd evaluate`` does. Writes
``OUT/<analysis>.json`` (per algorithm: per target domain and the mean over targets) and ``OUT/<analysis>.png``
(the methods compared), and attaches both to every involved run's MLflow entry under ``analysis/<analysis>/``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from mbcd.stages.common import StageError, parser, run_with_params


def build_parser():
    p = parser("analyse", __doc__.splitlines()[0])
    p.add_argument("--analysis", required=True, help="a registered analysis, enabled in params analysis.enabled")
    p.add_argument("--dataset", required=True, help="a dataset of params datasets")
    p.add_argument("--modalities", required=True, help="the modality set, e.g. rgb+flow+audio")
    p.add_argument("--runs", required=True, type=Path, help="the runs root (runs/<dataset>/<experiment>/...)")
    p.add_argument("--caches", required=True, type=Path, help="data/cache/<dataset>")
    p.add_argument("--splits", required=True, type=Path, help="data/splits/<dataset> (one folder per experiment)")
    p.add_argument("--out", required=True, type=Path, help="output folder for <analysis>.json and <analysis>.png")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: torch's own choice)")
    return p


def get_analysis(params: dict[str, Any], name: str, params_file: str = "params"):
    """The configured analysis object; StageError when it is unknown or not enabled in the params."""
    from mbcd import registries

    known = registries.load("analysis")
    if name not in known:
        raise StageError(f"--analysis: unknown analysis {name!r}; registered: {', '.join(known.names())}")
    section = params.get("analysis", {})
    if name not in section.get("enabled", []):
        raise StageError(f"{params_file}: analysis.enabled does not include {name!r}; add it to run this analysis")
    if name not in section:
        raise StageError(f"{params_file}: analysis.{name} (the analysis' settings) is missing")
    return known.get(name)(section[name], params["eval"].get("batch_size", 64))


def analysis_runs(params: dict[str, Any], name: str, dataset: str, modalities: str) -> list[tuple[Any, Any]]:
    """(run, experiment) of every run analysis ``name`` reads (also the Snakefile's input list): each
    multi-source experiment x study algorithm (uni-modal ones aside) x seed on the set, plus, when the analysis
    needs them, the ``Unimodal`` runs of each modality of the set."""
    from mbcd import registries
    from mbcd.config import resolve_algorithm
    from mbcd.experiments import Run, all_experiments
    from mbcd.modality import format_modality_set, parse_modality_set

    mods = parse_modality_set(modalities)
    algorithms = [a for a in params["experiments"]["algorithms"] if resolve_algorithm(params, a)[0] != "Unimodal"]
    sets = [(a, format_modality_set(mods)) for a in algorithms]
    if registries.load("analysis").get(name).needs_unimodal:
        sets += [("Unimodal", m) for m in mods]
    exps = [e for e in all_experiments(params, dataset) if e.protocol == "multi_source"]
    return [(Run(dataset, e.name, mset, a, seed), e) for e in exps for a, mset in sets
            for seed in params["experiments"]["seeds"]]  # fmt: skip


def plan(params: dict[str, Any], name: str, dataset: str, modalities: str, runs_root: Path, splits_root: Path,
         caches: Path) -> list[tuple[Any, Path, Path, list[str]]]:  # fmt: skip
    """(run, run dir, experiment splits folder, target domains) of every run the analysis reads; checked."""
    from mbcd.engine.data import open_modality_cache
    from mbcd.modality import parse_modality_set

    if dataset not in params["datasets"]:
        raise StageError(f"--dataset: {dataset!r} has no block in params datasets")
    if "multi_source" not in params["experiments"]["protocols"]:
        raise StageError("experiments.protocols: the analyses need multi_source (leave-one-domain-out) runs")
    for domain in params["datasets"][dataset]["domains"]:
        for m in parse_modality_set(modalities):
            open_modality_cache(caches / domain / m)
    out = []
    for run, exp in analysis_runs(params, name, dataset, modalities):
        run_dir = runs_root / run.path
        for file in ("selected.pt", "result.json"):
            if not (run_dir / file).is_file():
                raise StageError(f"{run_dir / file}: not found; train and evaluate {run.identity} first")
        out.append((run, run_dir, splits_root / exp.name, list(exp.targets)))
    return out


def analyse(params: dict[str, Any], args: Any) -> dict[str, Any]:
    """Measure every planned run, aggregate, write the JSON and PNG, log them to MLflow; returns the JSON."""
    import torch

    from mbcd import tracking
    from mbcd.analysis.common import aggregate, analysis_seed, write_json
    from mbcd.stages.evaluate import load_selected

    analysis = get_analysis(params, args.analysis, args.params)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    runs = plan(params, args.analysis, args.dataset, args.modalities, args.runs, args.splits, args.caches)
    measured = []
    for run, run_dir, splits, targets in runs:
        start = time.perf_counter()
        sel = load_selected(params, run_dir, splits, args.caches)
        measured.append((run, targets, analysis.measure(sel, analysis_seed(args.analysis, run))))
        took = time.perf_counter() - start
        print(f"{args.analysis}: {run.identity} ({sel.which}, epoch {sel.epoch}): {took:.1f} s", flush=True)
    result = {
        "analysis": args.analysis, "dataset": args.dataset, "modalities": args.modalities,
        "protocol": "multi_source", "evaluated": params["eval"]["evaluate"], "selection": params["eval"]["selection"],
        "settings": params["analysis"][args.analysis], "algorithms": aggregate(analysis, measured),
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    paths = [args.out / f"{args.analysis}.json", args.out / f"{args.analysis}.png"]
    write_json(result, paths[0])
    analysis.plot(result, paths[1])
    for _, run_dir, _, _ in runs:
        tracking.log_to_run(params, run_dir, paths, f"analysis/{args.analysis}")
    return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_with_params(args, analyse, args.analysis)


if __name__ == "__main__":
    sys.exit(main())
