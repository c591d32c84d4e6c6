"""``mbcd bench <name>``: the project's benchmarks (figures for the README, never timed tests).

Each benchmark is a module ``mbcd.bench.<name>`` with ``main(argv)``; ``mbcd bench --help`` lists them.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import mbcd.bench
from mbcd.stages.common import run_stage


def _benches() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(mbcd.bench.__path__))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = _benches()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: mbcd bench <name> [options]\n\nbenchmarks: " + (", ".join(names) or "(none)"))
        return 0
    if argv[0] not in names:
        print(f"mbcd bench: unknown benchmark {argv[0]!r}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"mbcd.bench.{argv[0]}")
    code: list[int] = [0]

    def body() -> None:  # a bad params file is one line on stderr, as in every stage
        code[0] = int(module.main(argv[1:]) or 0)

    return run_stage(body) or code[0]
