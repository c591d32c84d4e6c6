"""``mbcd manifest``: turn a dataset's source layout into per-domain manifests (``docs/contracts.md``).

Writes ``<domain>.tsv`` per domain, ``classes.tsv``, ``rejects.tsv`` and ``summary.json`` into ``--out``,
atomically. Every candidate row is checked cheaply (file exists, enough frames / audio, audio track present,
container readable, label in the class list). With ``split.strict: true`` all offending rows are reported in
one error and nothing is written; with ``false`` they go to ``rejects.tsv`` and are counted in the summary.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from mbcd import registries
from mbcd.config import load_params
from mbcd.data.adapters.base import check_rows
from mbcd.data.manifest import Reject, atomic_dir, write_classes, write_rejects, write_tsv
from mbcd.stages.common import StageError, parser, run_stage


def build_manifests(params: dict[str, Any], dataset: str, root: Path | None = None):
    """(good rows, classes, rejects) of ``dataset``; raises StageError on a bad dataset block or layout."""
    block = params["datasets"].get(dataset)
    if block is None:
        raise StageError(
            f"--dataset {dataset!r}: no datasets.{dataset} block in params (have: {', '.join(params['datasets'])})"
        )
    root = Path(root or block["root"])
    if not root.is_dir():
        raise StageError(f"datasets.{dataset}.root: {root} is not a directory")
    try:
        adapter = registries.load("adapter").get(block["adapter"])()
    except KeyError as err:
        raise StageError(f"datasets.{dataset}.adapter: {err.args[0]}") from None
    try:
        mset = adapter.build(root, list(block["domains"]), params)
    except (ValueError, KeyError) as err:
        raise StageError(f"{dataset} ({root}): {err}") from None
    good, rejects = check_rows(mset, root, int(params["extract"]["rgb"]["num_frames"]))
    return good, mset.classes, rejects


def _fail_strict(dataset: str, rejects: list[Reject]) -> None:
    lines = "\n".join(f"  {r.line()}" for r in rejects)
    raise StageError(f"dataset {dataset}: {len(rejects)} bad row(s) (split.strict is true, nothing written):\n{lines}")


def write_outputs(
    out: Path, params: dict[str, Any], dataset: str, root: Path, rows, classes, rejects, t0: float
) -> dict:
    """Write the manifest folder atomically; returns the summary."""
    domains = list(params["datasets"][dataset]["domains"])
    counts = {d: dict(Counter(r["split"] for r in rows if r["domain"] == d)) for d in domains}
    summary = {
        "dataset": dataset, "adapter": params["datasets"][dataset]["adapter"], "root": str(root),
        "domains": domains, "classes": classes, "n_rows": len(rows), "counts": counts,
        "n_rejected": len(rejects), "rejected_by_domain": dict(Counter(r.domain for r in rejects)),
        "strict": bool(params["split"]["strict"]), "seconds": round(time.time() - t0, 3),
    }  # fmt: skip
    with atomic_dir(out) as tmp:
        for d in domains:
            write_tsv(tmp / f"{d}.tsv", [r for r in rows if r["domain"] == d])
        write_classes(tmp / "classes.tsv", classes)
        write_rejects(tmp / "rejects.tsv", rejects)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = parser("manifest", __doc__ or "")
    p.add_argument("--dataset", required=True, help="a key of params datasets")
    p.add_argument("--out", required=True, help="output folder, e.g. data/manifests/NAME")
    p.add_argument("--root", default=None, help="override datasets.NAME.root")
    args = p.parse_args(argv)

    def body() -> None:
        t0 = time.time()
        params = load_params(args.params, check_registries=False)  # data stages need only the adapters
        rows, classes, rejects = build_manifests(params, args.dataset, args.root)
        if rejects and params["split"]["strict"]:
            _fail_strict(args.dataset, rejects)
        root = Path(args.root or params["datasets"][args.dataset]["root"])
        empty = [d for d in params["datasets"][args.dataset]["domains"] if not any(r["domain"] == d for r in rows)]
        if empty:
            raise StageError(f"dataset {args.dataset} ({root}): no usable clips for domain(s) {', '.join(empty)}")
        s = write_outputs(Path(args.out), params, args.dataset, root, rows, classes, rejects, t0)
        print(
            f"manifest {args.dataset}: {s['n_rows']} clips, {s['n_rejected']} rejected, {len(classes)} classes -> {args.out} ({s['seconds']} s)"
        )

    return run_stage(body)
