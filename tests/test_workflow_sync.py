"""dvc.yaml and the Snakemake rules stay in step: the same stage commands with the same output paths, and every
params key a DVC stage names exists in params.yaml."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}


def _normalise(cmd: str) -> str:
    cmd = re.sub(r"\s*>\s*\S+\s+2>&1\s*$", "", cmd.strip())  # Snakemake's log redirection
    cmd = re.sub(r"--threads \d+", "--threads N", cmd)  # scheduler-dependent
    return " ".join(cmd.split())


def _snakemake_plan(wf: Path) -> tuple[set[str], set[str]]:
    """(shell commands, output paths) of a dry run."""
    out = subprocess.run(["snakemake", "-n", "-p"], cwd=wf, env=ENV, capture_output=True, text=True, check=True).stdout
    cmds = {_normalise(line.split("Shell command:", 1)[1]) for line in out.splitlines() if "Shell command:" in line}
    outputs = {p.strip() for line in out.splitlines() if line.strip().startswith("output:") for p in line.split(":", 1)[1].split(",")}
    return cmds - {"None"}, outputs


def _dvc_stages(wf: Path) -> list:
    from dvc.repo import Repo

    with Repo(str(wf)) as repo:
        return list(repo.index.stages)


def _lookup(params: dict, dotted: str) -> object:
    node: object = params
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, f"dvc.yaml names params key {dotted!r}, absent from params.yaml"
        node = node[part]
    return node


def test_dvc_and_snakemake_run_the_same_commands(repo_root: Path, tmp_path: Path) -> None:
    wf = tmp_path / "wf"
    wf.mkdir()
    for name in ["Snakefile", "workflow", "params.yaml", "dvc.yaml", ".dvc", "environment.yml"]:
        src = repo_root / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, wf / name)
    subprocess.run(["git", "init", "-q"], cwd=wf, check=True)
    stages = _dvc_stages(wf)
    dvc_cmds = {_normalise(s.cmd) for s in stages}
    snake_cmds, snake_outputs = _snakemake_plan(wf)
    assert dvc_cmds == snake_cmds
    params = yaml.safe_load((wf / "params.yaml").read_text())
    for stage in stages:
        for dep in stage.deps:
            for key in getattr(dep, "params", None) or []:
                _lookup(params, key)
        shared = [o for o in map(str, stage.outs) for p in snake_outputs if p == o or p.startswith(o + "/")]
        assert shared, f"{stage.addressing}: no output (or output folder) shared with the rules"
