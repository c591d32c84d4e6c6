"""MLflow behind one module: the only file of the project that imports mlflow.

Files in the run directory stay the record; MLflow mirrors them and adds the UI. Layout in MLflow:
one experiment per study (``params.study``); a parent run per (dataset, protocol, modality set,
algorithm, seed); one child run per experiment of that protocol (held-out domain or source domain),
carrying the resolved params, every per-epoch metric with its step, tags (git commit, orchestrator) and
artifacts. The parent carries the metrics averaged over its children (``log_parent_summaries``).

The default store is sqlite under the project (MLflow 3.17 refuses the plain file store). Parallel
Snakemake jobs share it: the store's first creation and the find-or-create of a parent run are serialised by
a file lock, sqlite waits up to a minute for a lock, and writes retry on "database is locked".
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from mbcd.experiments import Run

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")

T = TypeVar("T")
RUN_FILE = "tracking.json"  # child run id, so that resume and evaluate log to the same MLflow run
PROTOCOL_OF_PREFIX = {"ms": "multi_source", "ss": "single_source"}


def resolve_uri(uri: str, base: Path | None = None) -> str:
    """Make a relative ``sqlite:///`` path absolute (against ``base`` or cwd) and add a lock timeout."""
    if not uri.startswith("sqlite:///"):
        return uri
    path, _, query = uri[len("sqlite:///") :].partition("?")
    db = Path(path)
    if not db.is_absolute():
        db = (base or Path.cwd()) / db
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}?{query or 'timeout=60'}"


def _lock_path(uri: str) -> Path:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :].partition("?")[0]).with_suffix(".lock")
    return Path(tempfile.gettempdir()) / "mbcd-mlflow.lock"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _retry(fn: Callable[[], T], attempts: int = 8) -> T:
    """Call ``fn``, retrying with back-off while sqlite reports a lock."""
    for i in range(attempts):
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - MLflow wraps sqlite errors in several types
            if "locked" not in str(err).lower() or i == attempts - 1:
                raise
            time.sleep(0.2 * 2**i)
    raise AssertionError("unreachable")


def git_commit(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params -> ``{'a.b.c': 'value'}`` (MLflow params are flat strings)."""
    out: dict[str, str] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return out


class _NoTracker:
    """What ``open_run`` yields when tracking is disabled: every call does nothing."""

    run_id: str | None = None

    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...


class Tracker:
    """One MLflow child run; created by :func:`open_run`."""

    def __init__(self, client: Any, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        items = [Param(k, v[:6000]) for k, v in flatten(params).items() if k not in existing]
        for i in range(0, len(items), 100):
            _retry(lambda chunk=items[i : i + 100]: self.client.log_batch(self.run_id, params=chunk))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(_metric_key(k), float(v), now, step) for k, v in metrics.items() if v is not None]
        for i in range(0, len(items), 500):
            _retry(lambda chunk=items[i : i + 500]: self.client.log_batch(self.run_id, metrics=chunk))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        _retry(lambda: self.client.log_artifact(self.run_id, str(path), artifact_path))


def _metric_key(name: str) -> str:
    """MLflow keys allow '/', '.', '-', '_' and alphanumerics; anything else becomes '_'."""
    return "".join(c if c.isalnum() or c in "/._- " else "_" for c in name)


def client_for(params: dict[str, Any], base: Path | None = None) -> tuple[Any, str]:
    """(MlflowClient, experiment id) for the study; creates store and experiment under a lock."""
    from mlflow.tracking import MlflowClient

    cfg = params["tracking"]
    uri = resolve_uri(cfg["uri"], base)
    with _file_lock(_lock_path(uri)):
        client = MlflowClient(tracking_uri=uri)
        exp = _retry(lambda: client.get_experiment_by_name(params["study"]))
        if exp is not None:
            return client, exp.experiment_id
        root = cfg.get("artifact_root")
        location = None
        if root and not uri.startswith(("http://", "https://")):
            location = Path(root if Path(root).is_absolute() else (base or Path.cwd()) / root).resolve().as_uri()
        return client, _retry(lambda: client.create_experiment(params["study"], artifact_location=location))


def _protocol(run: Run) -> str:
    return PROTOCOL_OF_PREFIX.get(run.experiment.split("_", 1)[0], "custom")


def parent_key(run: Run) -> str:
    return f"{run.dataset}/{_protocol(run)}/{run.modalities}/{run.algorithm}/seed{run.seed}"


def _parent_run(client: Any, exp_id: str, run: Run, tags: dict[str, str]) -> str:
    """Find or create the parent run of ``run`` (called under the store lock)."""
    key = parent_key(run)
    found = _retry(
        lambda: client.search_runs([exp_id], filter_string=f"tags.`mbcd.parent_key` = '{key}'", max_results=1)
    )
    if found:
        return found[0].info.run_id
    created = _retry(lambda: client.create_run(exp_id, run_name=key, tags={**tags, "mbcd.parent_key": key}))
    return created.info.run_id


def _run_tags(run: Run, orchestrator: str) -> dict[str, str]:
    return {
        "mbcd.dataset": run.dataset,
        "mbcd.protocol": _protocol(run),
        "mbcd.experiment": run.experiment,
        "mbcd.modalities": run.modalities,
        "mbcd.algorithm": run.algorithm,
        "mbcd.seed": str(run.seed),
        "mbcd.orchestrator": orchestrator,
        "mlflow.source.git.commit": git_commit(),
    }


@contextlib.contextmanager
def open_run(params: dict[str, Any], run: Run, run_dir: str | Path, orchestrator: str = "cli") -> Iterator[Any]:
    """The MLflow child run of ``run``: created, or reopened when ``run_dir`` records one (resume).

    An exception inside the block marks the run FAILED and is re-raised; otherwise it ends FINISHED.
    """
    if not params["tracking"]["enabled"]:
        yield _NoTracker()
        return
    run_dir = Path(run_dir)
    client, exp_id = client_for(params)
    tags = _run_tags(run, orchestrator)
    record = run_dir / RUN_FILE
    run_id = json.loads(record.read_text())["run_id"] if record.exists() else None
    if run_id is None:
        with _file_lock(_lock_path(resolve_uri(params["tracking"]["uri"]))):
            parent = _parent_run(client, exp_id, run, tags)
        child_tags = {**tags, "mlflow.parentRunId": parent}
        run_id = _retry(lambda: client.create_run(exp_id, run_name=run.experiment, tags=child_tags)).info.run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"run_id": run_id, "experiment_id": exp_id}))
    else:
        _retry(lambda: client.update_run(run_id, status="RUNNING"))
    tracker = Tracker(client, run_id)
    try:
        yield tracker
    except BaseException:
        _retry(lambda: client.set_terminated(run_id, status="FAILED"))
        raise
    _retry(lambda: client.set_terminated(run_id, status="FINISHED"))


def log_to_run(
    params: dict[str, Any], run_dir: str | Path, paths: list[Path], artifact_path: str | None = None
) -> bool:
    """Attach files (an analysis' JSON and PNG) to the MLflow run that ``run_dir/tracking.json`` records.

    The run is re-opened by id and its status left as it is. Returns False, logging nothing, when tracking
    is disabled or the run directory records no MLflow run (it was trained with tracking off).
    """
    record = Path(run_dir) / RUN_FILE
    if not params["tracking"]["enabled"] or not record.exists():
        return False
    run_id = json.loads(record.read_text())["run_id"]
    client, _ = client_for(params)
    tracker = Tracker(client, run_id)
    for path in paths:
        tracker.log_artifact(path, artifact_path)
    return True


def log_parent_summaries(params: dict[str, Any], summaries: dict[str, dict[str, float]]) -> None:
    """Write averaged metrics onto parent runs: ``{parent_key: {metric: value}}`` (from the collect stage)."""
    if not params["tracking"]["enabled"] or not summaries:
        return
    client, exp_id = client_for(params)
    for key, metrics in summaries.items():
        found = _retry(
            lambda key=key: client.search_runs([exp_id], filter_string=f"tags.`mbcd.parent_key` = '{key}'")
        )
        for parent in found:
            Tracker(client, parent.info.run_id).log_metrics(metrics, step=0)
            _retry(lambda pid=parent.info.run_id: client.set_terminated(pid, status="FINISHED"))


def find_runs(uri: str, study: str) -> list[dict[str, Any]]:
    """Every run of a study as plain dicts (run id, name, status, tags, metrics) - for tests and reports."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=resolve_uri(uri))
    exp = client.get_experiment_by_name(study)
    if exp is None:
        return []
    return [
        {
            "run_id": r.info.run_id,
            "name": r.info.run_name,
            "status": r.info.status,
            "tags": dict(r.data.tags),
            "metrics": dict(r.data.metrics),
        }
        for r in client.search_runs([exp.experiment_id], max_results=10000)
    ]


def list_artifacts(uri: str, run_id: str, path: str | None = None) -> list[str]:
    """Artifact paths of one run under ``path`` (one level) - for tests and reports."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=resolve_uri(uri))
    return [a.path for a in client.list_artifacts(run_id, path)]
