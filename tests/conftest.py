"""Shared fixtures: the repository's params file, loaded and as a mutable copy."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def _default_params() -> dict[str, Any]:
    with open(ROOT / "params.yaml") as fh:
        return yaml.safe_load(fh)


@pytest.fixture
def params(_default_params: dict[str, Any]) -> dict[str, Any]:
    """A fresh, mutable copy of the repository's params.yaml."""
    return copy.deepcopy(_default_params)
