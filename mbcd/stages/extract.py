"""``mbcd extract``: decode one (dataset, domain, modality) into a training-ready cache.

    mbcd extract --params P --dataset NAME --domain D --modality M \\
        --manifest data/manifests/NAME/D.tsv --out data/cache/NAME/D/M --threads N [--root DIR]

Paths in the manifest are relative to the dataset root (``params.datasets.<name>.root`` or ``--root``).
The cache (docs/contracts.md) is written atomically and skipped when its report records the same manifest
rows and extract params. Failed clips are listed in ``report.json``; with ``extract.strict`` the stage fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mbcd.modality import MODALITIES
from mbcd.stages.common import StageError, load, parser, run_stage


def build_parser() -> argparse.ArgumentParser:
    p = parser("extract", "decode one (dataset, domain, modality) into a training-ready cache")
    p.add_argument("--dataset", required=True, help="a dataset block of params.datasets")
    p.add_argument("--domain", required=True, help="one of the dataset's domains")
    p.add_argument("--modality", required=True, choices=MODALITIES)
    p.add_argument("--manifest", required=True, type=Path, help="the domain's manifest TSV")
    p.add_argument("--out", required=True, type=Path, help="the cache folder to write")
    p.add_argument("--threads", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--root", type=Path, default=None, help="dataset root (default: params.datasets.<name>.root)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _dataset(params: dict[str, Any], name: str, domain: str) -> dict[str, Any]:
    datasets = params["datasets"]
    if name not in datasets:
        raise StageError(f"--dataset {name}: no block datasets.{name} in the params (have: {', '.join(datasets)})")
    block = datasets[name]
    if domain not in block["domains"]:
        raise StageError(f"--domain {domain}: not in datasets.{name}.domains ({', '.join(block['domains'])})")
    return block


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The stage body: check arguments against the params, read the manifest, extract; returns the report."""
    from mbcd.extract import extract_domain, read_manifest
    from mbcd.extract.runner import single_threaded

    params = load(args)
    block = _dataset(params, args.dataset, args.domain)
    if args.threads < 1:
        raise StageError(f"--threads {args.threads}: must be at least 1")
    try:
        rows = read_manifest(args.manifest)
    except ValueError as err:
        raise StageError(str(err)) from None
    for line_no, row in enumerate(rows, start=2):
        if row["domain"] != args.domain:
            raise StageError(f"{args.manifest}, line {line_no}: domain {row['domain']!r}, expected {args.domain!r}")
    root = args.root if args.root is not None else Path(block["root"])
    if not root.is_dir():
        raise StageError(f"dataset root {root} (datasets.{args.dataset}.root or --root): not a folder")
    single_threaded()  # --threads 1 extracts in this process: keep it to one core as well
    meta = {"dataset": args.dataset, "domain": args.domain, "manifest": str(args.manifest), "root": str(root)}
    try:
        report = extract_domain(
            modality=args.modality, extract_params=params["extract"], rows=rows, root=root, out=args.out,
            threads=args.threads, meta=meta, progress=not args.quiet,
        )  # fmt: skip
    except ValueError as err:
        raise StageError(f"extract {args.dataset}/{args.domain}/{args.modality}: {err}") from None
    state = "up to date" if report.get("skipped") else f"{report['n_ok']} ok, {report['n_failed']} failed"
    print(f"{args.out}: {state}", file=sys.stderr)
    return report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_stage(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
