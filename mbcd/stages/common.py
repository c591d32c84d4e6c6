"""Argument helpers shared by the stage commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from mbcd.config import ParamsError, load_params


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A stage parser with the ``--params`` option every stage takes."""
    p = argparse.ArgumentParser(prog=f"mbcd {prog}", description=description)
    p.add_argument("--params", default="params.yaml", help="study params file (default: params.yaml)")
    return p


def load(args: argparse.Namespace) -> dict[str, Any]:
    return load_params(args.params)


def run_with_params(
    args: argparse.Namespace, work: Callable[[dict[str, Any], argparse.Namespace], Any], what: object
) -> int:
    """Load the params, run ``work(params, args)``; a ValueError becomes a StageError prefixed with ``what``."""

    def body() -> None:
        params = load(args)
        try:
            work(params, args)
        except ValueError as err:
            raise StageError(f"{what}: {err}") from err

    return run_stage(body)


def run_stage(body: Callable[[], Any]) -> int:
    """Run a stage body; a ParamsError or a stage error becomes one line on stderr and exit code 1."""
    try:
        body()
    except (ParamsError, StageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


class StageError(RuntimeError):
    """A stage failure caused by its input; the message names the file/row/key and the reason."""
