"""The install files agree: environment.yml repeats pyproject.toml's pins; CI calls the README's test command."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml


def _pins(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line.strip())
        assert m, f"not an exact pin: {line!r}"
        out[m.group(1).lower()] = m.group(2)
    return out


def test_environment_yml_matches_pyproject(repo_root: Path) -> None:
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    wanted = _pins(project["dependencies"] + project["optional-dependencies"]["test"])
    env = yaml.safe_load((repo_root / "environment.yml").read_text())
    pip_block = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    got = _pins([p for p in pip_block if not p.startswith("-e")])
    assert got == wanted
    assert "python=3.11" in env["dependencies"]
    assert "opencv-python" not in got and "opencv-python-headless" not in got, "plain opencv would shadow contrib"


def test_ci_runs_the_readme_test_command(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text()
    ci = (repo_root / ".ci" / "run").read_text()
    assert "make test" in readme and "make reproduce" in readme
    assert re.search(r"^make test$", ci, re.M)
