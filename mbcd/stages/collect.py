"""``mbcd collect``: every finished run of the study -> the paper's tables (Markdown, CSV), plots and
``metrics.json`` for ``dvc metrics show``; mirrors the averages onto the MLflow parent runs."""

from __future__ import annotations

from pathlib import Path

from mbcd import plots, results, tracking
from mbcd.experiments import all_runs
from mbcd.stages.common import StageError, load, parser, run_stage


def main(argv: list[str] | None = None) -> int:
    p = parser("collect", __doc__ or "")
    p.add_argument("--runs", required=True, type=Path, help="runs root (runs/)")
    p.add_argument("--out", required=True, type=Path, help="output folder (results/<study>)")
    args = p.parse_args(argv)

    def body() -> None:
        params = load(args)
        try:
            rows = results.collect_rows(params, args.runs)
            run_results = {run: results.load_result(args.runs / run.path) for run in all_runs(params)}
        except (FileNotFoundError, KeyError, ValueError) as err:
            raise StageError(str(err).strip("'\"")) from None
        metrics = results.write_tables(params, rows, args.out)
        evaluated = {run: res.get("evaluated", "student") for run, res in run_results.items()}
        plots.curves(list(run_results), args.runs, evaluated, args.out)
        plots.modality_bars(run_results, args.out)
        tracking.log_parent_summaries(params, results.parent_summaries(rows))
        print((args.out / "tables.md").read_text())
        print(f"wrote {args.out}/metrics.json ({sum(len(v) for v in metrics.values())} dataset/protocol groups)")

    return run_stage(body)
