# Shared definitions: the params file (validated with the same schema as the Python loader), the sweep
# expanded by mbcd.experiments (the same code the stages and dvc.yaml's generator use), and path helpers.
import os
import re

from mbcd.config import load_params
from mbcd.experiments import all_experiments, all_runs
from mbcd.modality import parse_modality_set

PARAMS = config.get("params", "params.yaml")
P = load_params(PARAMS)
validate(P, "../schemas/params.schema.yaml")
os.environ.setdefault("MBCD_ORCHESTRATOR", "snakemake")

DATASETS = P["experiments"]["datasets"]
RUNS = all_runs(P)
SYNTH_ROOTS = {P["datasets"][d]["root"]: d for d in DATASETS if P["datasets"][d]["adapter"] == "synth"}
ENV = "../../environment.yml"  # for --use-conda; the same pins as pyproject.toml


def _uses_gpu(device):
    """Whether training jobs take a GPU: train.device cuda, or auto on a machine that has one."""
    if device != "auto":
        return device == "cuda"
    import torch

    return torch.cuda.is_available()


TRAIN_GPUS = 1 if _uses_gpu(P["train"]["device"]) else 0


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    domain="[A-Za-z0-9_]+",
    modality="rgb|flow|audio",
    experiment="(ms|ss)_[A-Za-z0-9_]+",
    modalities="[a-z]+(\\+[a-z]+)*",
    algorithm="[A-Za-z0-9_]+",
    seed="[0-9]+",


def used_modalities(dataset):
    """Modalities any run of ``dataset`` uses, in canonical order."""
    mods = {m for r in RUNS if r.dataset == dataset for m in parse_modality_set(r.modalities)}
    return [m for m in ("rgb", "flow", "audio") if m in mods]


def cache_dirs(dataset, modalities=None):
    mods = used_modalities(dataset) if modalities is None else parse_modality_set(modalities)
    return [f"data/cache/{dataset}/{d}/{m}" for d in P["datasets"][dataset]["domains"] for m in mods]


def dataset_source(dataset):
    """What the manifest stage reads: the generator's output for synth, nothing Snakemake makes otherwise."""
    root = P["datasets"][dataset]["root"]
    return [f"{root}/data_card.json"] if root in SYNTH_ROOTS else []


def algorithm_section(w):
    """The params a run depends on: its algorithm (or ablation) section, model, train and eval."""
    from mbcd.config import resolve_algorithm

    return {"algorithm": resolve_algorithm(P, w.algorithm)[1], "model": P["model"], "train": P["train"], "eval": P["eval"]}
