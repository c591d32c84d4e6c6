"""Collecting finished runs into the paper's table layouts (a pure stage: files in, files out).

Rows come from each run's ``result.json`` (the selected model's accuracies, see docs/contracts.md).
Tables follow the MBCD paper: Table 1 (multi-source leave-one-domain-out: rows = algorithms, columns = held-out
domains + average), Table 2 (single-source: columns = source->target pairs + average) and Table 3 (in-domain:
accuracy on held-out data of the training domains). Cells are mean ± std over seeds, in percent.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mbcd.experiments import Run, all_runs, find_experiment
from mbcd.modality import paper_label


@dataclass(frozen=True)
class Row:
    """One accuracy of one run: a (source set -> target) cell before averaging over seeds."""

    dataset: str
    protocol: str
    modalities: str
    algorithm: str
    seed: int
    column: str  # held-out domain (multi_source), "src->tgt" (single_source) or experiment (in_domain)
    acc: float  # percent


def load_result(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "result.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: missing - the run has not been evaluated (mbcd evaluate)") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def _domain_acc(result: dict[str, Any], domain: str, path: Path) -> float:
    key = f"test_acc/{domain}"
    if key not in result:
        raise KeyError(f"{path}/result.json: no {key!r} (keys: {', '.join(sorted(result))})")
    return 100.0 * float(result[key])


def rows_for_run(params: dict[str, Any], run: Run, runs_root: Path) -> list[Row]:
    """The table cells one run contributes: one per target domain, plus its in-domain accuracy."""
    exp = find_experiment(params, run.dataset, run.experiment)
    run_dir = runs_root / run.path
    result = load_result(run_dir)
    key = (run.dataset, exp.protocol, run.modalities, run.algorithm, run.seed)
    rows = []
    for target in exp.targets:
        column = target if exp.protocol == "multi_source" else f"{exp.sources[0]}->{target}"
        rows.append(Row(*key, column, _domain_acc(result, target, run_dir)))
    if "val_acc" in result:
        rows.append(Row(run.dataset, "in_domain", run.modalities, run.algorithm, run.seed, exp.name, 100 * result["val_acc"]))
    return rows


def collect_rows(params: dict[str, Any], runs_root: Path) -> list[Row]:
    return [row for run in all_runs(params) for row in rows_for_run(params, run, runs_root)]


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(rows: list[Row]) -> dict[tuple[str, str, str], dict[str, dict[str, tuple[float, float, int]]]]:
    """{(dataset, protocol, modalities): {algorithm: {column or 'Avg': (mean, std, n_seeds)}}}.

    'Avg' is the per-seed average over columns, then mean ± std over seeds (the paper's convention).
    """
    cells: dict[tuple[str, str, str], dict[str, dict[str, dict[int, float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(dict))
    )
    for r in rows:
        cells[(r.dataset, r.protocol, r.modalities)][r.algorithm][r.column][r.seed] = r.acc
    out: dict[tuple[str, str, str], dict[str, dict[str, tuple[float, float, int]]]] = {}
    for table_key, algos in cells.items():
        out[table_key] = {}
        for algo, columns in algos.items():
            stats = {c: (*_mean_std(list(s.values())), len(s)) for c, s in columns.items()}
            seeds = sorted(set.intersection(*(set(s) for s in columns.values())))
            per_seed_avg = [statistics.fmean(columns[c][seed] for c in columns) for seed in seeds]
            stats["Avg"] = (*_mean_std(per_seed_avg), len(seeds))
            out[table_key][algo] = stats
    return out


def _fmt(cell: tuple[float, float, int] | None) -> str:
    if cell is None:
        return "-"
    mean, std, n = cell
    return f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f}"


def table_markdown(title: str, algos: dict[str, dict[str, tuple[float, float, int]]], order: list[str]) -> str:
    columns = sorted({c for stats in algos.values() for c in stats if c != "Avg"}) + ["Avg"]
    lines = [f"### {title}", "", "| Algorithm | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for algo in [a for a in order if a in algos] + sorted(set(algos) - set(order)):
        lines.append(f"| {algo} | " + " | ".join(_fmt(algos[algo].get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def table_csv(algos: dict[str, dict[str, tuple[float, float, int]]]) -> str:
    lines = ["algorithm,column,mean,std,n_seeds"]
    for algo, stats in sorted(algos.items()):
        lines += [f"{algo},{c},{m:.4f},{s:.4f},{n}" for c, (m, s, n) in sorted(stats.items())]
    return "\n".join(lines) + "\n"


TITLES = {
    "multi_source": "Multi-source leave-one-domain-out (target accuracy %, Table 1)",
    "single_source": "Single-source (target accuracy %, Table 2)",
    "in_domain": "In-domain (accuracy % on held-out source data, Table 3)",
}


def write_tables(params: dict[str, Any], rows: list[Row], out: Path) -> dict[str, Any]:
    """Write Markdown + CSV per (dataset, protocol, modality set); return the metrics.json content."""
    out.mkdir(parents=True, exist_ok=True)
    order = params["experiments"]["algorithms"]
    metrics: dict[str, Any] = {}
    md_all = [f"# Results of study `{params['study']}`\n"]
    for (dataset, protocol, mods), algos in sorted(aggregate(rows).items()):
        stem = f"{dataset}_{protocol}_{mods.replace('+', '-')}"
        title = f"{dataset}, {paper_label(mods.split('+'))}: {TITLES[protocol]}"
        md = table_markdown(title, algos, order)
        (out / f"table_{stem}.md").write_text(md)
        (out / f"table_{stem}.csv").write_text(table_csv(algos))
        md_all.append(md)
        for algo, stats in algos.items():
            node = metrics.setdefault(dataset, {}).setdefault(protocol, {}).setdefault(mods, {})
            node[algo] = {c: round(m, 4) for c, (m, _, _) in stats.items()}
    (out / "tables.md").write_text("\n".join(md_all))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


def parent_summaries(rows: list[Row]) -> dict[str, dict[str, float]]:
    """Average target accuracy per MLflow parent run (dataset/protocol/modalities/algorithm/seed)."""
    groups: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.protocol != "in_domain":
            groups[f"{r.dataset}/{r.protocol}/{r.modalities}/{r.algorithm}/seed{r.seed}"].append(r.acc)
    return {key: {"test_acc/avg": statistics.fmean(v) / 100.0} for key, v in groups.items()}
