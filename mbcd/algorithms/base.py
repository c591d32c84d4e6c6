"""The Algorithm contract (DomainBed style): one ``nn.Module`` per method, stepping its own optimiser.

Every algorithm is built as ``cls(modalities, num_classes, hparams)`` with
``hparams = {"model": params["model"], "algorithm": <resolved section>, "train": params["train"]}``, and offers

* ``update(batch, step) -> dict[str, float]``: one optimiser step; ``'loss/total'`` and one ``'loss/<term>'``
  per (weighted) loss term, whose sum is the total, plus diagnostics such as ``'amd/p/<modality>'``;
* ``predict(batch, which)``: fused logits (B, C); ``which='teacher'`` falls back to the student when the
  algorithm has no teacher;
* ``predict_modalities(batch, which)``: ``{'fused', <modality> for each uni-modal head}`` logits;
* ``features(batch, which)``: per-modality LayerNorm-ed features and their concatenation ``'fused'``.

A batch is a dict with one float tensor per configured modality plus ``label`` and ``domain`` (long, (B,)).
The whole state (student, teacher, step counter) is in ``state_dict()``; the optimiser's in
``self.optimizer.state_dict()``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from mbcd.distributed import average_gradients
from mbcd.modality import MODALITIES
from mbcd.models.fusion import MultiModalNet

INPUT_DIMS = {"rgb": 5, "flow": 5, "audio": 4}
"""Expected tensor rank per modality: rgb/flow (B, C, T, H, W), audio (B, 1, F, T)."""

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


class Algorithm(nn.Module):
    """Base class: subclasses build ``self.network`` (and optionally ``self.teacher``), then call
    :meth:`make_optimizer`, and implement :meth:`update`."""

    has_teacher: bool = False

    def __init__(self, modalities: tuple[str, ...], num_classes: int, hparams: dict[str, Any]) -> None:
        super().__init__()
        mods = tuple(modalities)
        bad = [m for m in mods if m not in MODALITIES]
        if not mods or bad or len(set(mods)) != len(mods):
            raise ValueError(
                f"{type(self).__name__}: bad modalities {mods!r}; expected distinct names from {', '.join(MODALITIES)}"
            )
        if num_classes < 2:
            raise ValueError(f"{type(self).__name__}: num_classes must be >= 2, got {num_classes}")
        for key in ("model", "algorithm", "train"):
            if key not in hparams:
                raise ValueError(f"{type(self).__name__}: hparams lacks the {key!r} section")
        self.modalities = tuple(m for m in MODALITIES if m in mods)
        self.num_classes = int(num_classes)
        self.hparams = hparams
        self.section: dict[str, Any] = hparams["algorithm"]
        self.register_buffer("num_steps", torch.zeros((), dtype=torch.long))
        self.network: MultiModalNet
        self.optimizer: torch.optim.Optimizer

    # ------------------------------------------------------------------ construction helpers
    def build_network(self, unimodal_heads: bool = True) -> MultiModalNet:
        return MultiModalNet(self.modalities, self.num_classes, self.hparams["model"], unimodal_heads)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Every parameter that trains (the teacher's are frozen, so it is outside the optimiser)."""
        return [p for p in self.parameters() if p.requires_grad]

    def make_optimizer(self) -> torch.optim.Optimizer:
        """Adam / AdamW / SGD over :meth:`trainable_parameters` with ``train.lr`` and ``train.weight_decay``."""
        train = self.hparams["train"]
        name = train.get("optimizer", "adam")
        if name not in OPTIMIZERS:
            raise ValueError(f"train.optimizer: {name!r} is not allowed; expected one of: {', '.join(OPTIMIZERS)}")
        kwargs: dict[str, Any] = {"lr": float(train["lr"]), "weight_decay": float(train.get("weight_decay", 0.0))}
        if name == "sgd":
            kwargs["momentum"] = 0.9
        return OPTIMIZERS[name](self.trainable_parameters(), **kwargs)

    # ------------------------------------------------------------------ batch checks and stepping
    def check_batch(self, batch: dict[str, Tensor], labels: bool = True) -> None:
        """Raise ValueError naming a missing/ill-shaped modality or an out-of-range label."""
        for m in self.modalities:
            if m not in batch:
                raise ValueError(f"batch is missing modality {m!r} (configured: {'+'.join(self.modalities)})")
            x = batch[m]
            if not torch.is_tensor(x) or x.dim() != INPUT_DIMS[m] or not x.is_floating_point():
                got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
                raise ValueError(f"batch[{m!r}]: expected a float tensor with {INPUT_DIMS[m]} dims, got {got}")
        if not labels:
            return
        if "label" not in batch:
            raise ValueError("batch is missing 'label'")
        y = batch["label"]
        if y.dim() != 1 or y.shape[0] != batch[self.modalities[0]].shape[0]:
            raise ValueError(
                f"batch['label']: expected shape ({batch[self.modalities[0]].shape[0]},), got {tuple(y.shape)}"
            )
        bad = (y < 0) | (y >= self.num_classes)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(f"batch['label'][{i}] = {int(y[i])} is outside [0, {self.num_classes})")

    def step(self, terms: dict[str, Tensor], step: int) -> dict[str, float]:
        """Sum the loss terms, refuse a non-finite one (naming it), back-propagate, average gradients over
        ranks, step the optimiser. Returns ``{'loss/total', 'loss/<term>'}`` as floats."""
        out = {f"loss/{k}": float(v.detach()) for k, v in terms.items()}
        for k, v in out.items():
            if not math.isfinite(v):
                raise FloatingPointError(f"{type(self).__name__} step {step}: {k} is {v}; no optimiser step taken")
        total = torch.stack(list(terms.values())).sum()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        average_gradients(self.trainable_parameters())
        self.optimizer.step()
        self.num_steps += 1
        out["loss/total"] = float(total.detach())
        return out

    def update(self, batch: dict[str, Tensor], step: int) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ inference
    def model_for(self, which: str) -> MultiModalNet:
        """The student network, or the teacher's averaged copy (the student when there is no teacher)."""
        if which not in ("student", "teacher"):
            raise ValueError(f"which: {which!r} is not allowed; expected 'student' or 'teacher'")
        if which == "teacher" and self.has_teacher:
            return self.teacher_network()
        return self.network

    def teacher_network(self) -> MultiModalNet:
        """The averaged copy of the network inside ``self.teacher`` (subclasses with extra parts override)."""
        return self.teacher.model  # type: ignore[attr-defined]

    def predict(self, batch: dict[str, Tensor], which: str = "student") -> Tensor:
        """Fused logits (B, C) with all modalities, no modality dropout."""
        self.check_batch(batch, labels=False)
        net = self.model_for(which)
        return net.fuse(net.encode(batch))

    def predict_modalities(self, batch: dict[str, Tensor], which: str = "student") -> dict[str, Tensor]:
        """``{'fused': (B, C), <modality>: (B, C) for each modality with a uni-modal head}``."""
        self.check_batch(batch, labels=False)
        return self.model_for(which)(batch)

    def features(self, batch: dict[str, Tensor], which: str = "student") -> dict[str, Tensor]:
        """Per-modality LayerNorm-ed features (B, d_k) and ``'fused'`` (B, Σ d_k)."""
        self.check_batch(batch, labels=False)
        return self.model_for(which).features(batch)
