"""``mbcd <stage> ...``: one console entry point over the stage commands.

Every stage is a module ``mbcd.stages.<name>`` with ``main(argv=None)``; Snakemake, DVC and the tests call
the same command lines. ``mbcd --help`` lists the stages; ``mbcd <stage> --help`` describes one.
"""

from __future__ import annotations

import importlib
import sys

# stage name -> (module, one-line description). Order = pipeline order.
STAGES: dict[str, tuple[str, str]] = {
    "check-params": ("mbcd.stages.check_params", "validate a params file against the schema and the registries"),
    "generate": ("mbcd.stages.generate", "write the bundled benchmark (real mp4/wav files) and its data card"),
    "manifest": ("mbcd.stages.manifest", "turn a dataset's source layout into per-domain manifests (TSV)"),
    "extract": ("mbcd.stages.extract", "decode one (dataset, domain, modality) into a training-ready cache"),
    "split": ("mbcd.stages.split", "write source-train / source-val / target-test manifests per experiment"),
    "train": ("mbcd.stages.train", "train one (experiment, algorithm, modality set, seed) run"),
    "evaluate": ("mbcd.stages.evaluate", "apply the model-selection policy and evaluate the selected model"),
    "collect": ("mbcd.stages.collect", "collect finished runs into the paper's tables, plots and metrics.json"),
    "analyse": ("mbcd.stages.analyse", "imbalance, robustness, flatness and embedding analyses of trained runs"),
    "bench": ("mbcd.stages.bench", "benchmarks: extraction throughput, encoder and training step times"),
}


def _usage() -> str:
    width = max(map(len, STAGES))
    lines = ["usage: mbcd <stage> [options]   (mbcd <stage> --help for a stage's options)", "", "stages:"]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in STAGES.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in STAGES:
        print(f"mbcd: unknown stage {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(STAGES[name][0])
    result = module.main(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
