"""``mbcd split``: source-train / source-val / target-test manifests for every experiment of a dataset.

For each experiment of :func:`mbcd.experiments.all_experiments` (``ms_<target>``, ``ss_<source>``) writes
``<out>/<experiment>/{train,val,test}.tsv`` (manifest columns), ``rejects.tsv`` (clips dropped because an
extraction report lists them as failed), ``classes.tsv`` and ``experiment.json`` (sources, targets, domain order, classes,
policies), plus ``<out>/counts.json`` (clips per experiment, split, domain and class). Written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

from mbcd.config import load_params
from mbcd.data.manifest import atomic_dir, write_classes, write_rejects, write_tsv
from mbcd.data.splits import counts, experiment_split, extraction_failures, load_manifests
from mbcd.experiments import all_experiments
from mbcd.stages.common import StageError, parser, run_stage


def main(argv: list[str] | None = None) -> int:
    p = parser("split", __doc__ or "")
    p.add_argument("--dataset", required=True, help="a key of params datasets")
    p.add_argument("--manifests", required=True, help="the manifest stage's folder, e.g. data/manifests/NAME")
    p.add_argument("--caches", required=True, help="extraction caches, e.g. data/cache/NAME (may not exist)")
    p.add_argument("--out", required=True, help="output folder, e.g. data/splits/NAME")
    args = p.parse_args(argv)

    def body() -> None:
        params = load_params(args.params, check_registries=False)  # data stages need no model registries
        if args.dataset not in params["datasets"]:
            raise StageError(f"--dataset {args.dataset!r}: no datasets.{args.dataset} block in {args.params}")
        domains = list(params["datasets"][args.dataset]["domains"])
        df, classes = load_manifests(Path(args.manifests), domains)
        failed = extraction_failures(Path(args.caches), domains)
        kept = df[~df["clip_id"].isin(failed)]
        cfg = params["split"]
        all_counts = {}
        with atomic_dir(Path(args.out)) as tmp:
            for exp in all_experiments(params, args.dataset):
                parts = experiment_split(kept, exp, cfg)
                for name, part in parts.items():
                    write_tsv(tmp / exp.name / f"{name}.tsv", part.to_dict("records"))
                mine = set(exp.sources) | set(exp.targets)
                write_rejects(tmp / exp.name / "rejects.tsv", [r for r in failed.values() if r.domain in mine])
                info = {
                    "dataset": args.dataset, "experiment": exp.name, "protocol": exp.protocol,
                    "sources": list(exp.sources), "targets": list(exp.targets),
                    "domains": list(exp.sources) + list(exp.targets), "classes": classes,
                    "validation": cfg["validation"], "holdout_fraction": cfg["holdout_fraction"],
                    "target_set": cfg["target_set"],
                }  # fmt: skip
                (tmp / exp.name / "experiment.json").write_text(json.dumps(info, indent=2) + "\n")
                write_classes(tmp / exp.name / "classes.tsv", classes)
                all_counts[exp.name] = counts(parts, classes)
            summary = {
                "dataset": args.dataset,
                "classes": classes,
                "n_dropped_extract": len(failed),
                "experiments": all_counts,
            }
            write_classes(tmp / "classes.tsv", classes)
            (tmp / "counts.json").write_text(json.dumps(summary, indent=2) + "\n")
        sizes = "; ".join(
            f"{e}: {'/'.join(str(c[s]['total']) for s in ('train', 'val', 'test'))}" for e, c in all_counts.items()
        )
        print(f"split {args.dataset}: train/val/test {sizes}; {len(failed)} dropped by extraction -> {args.out}")

    return run_stage(body)
