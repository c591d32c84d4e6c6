"""Strict loading of local pretrained checkpoints into encoders (never a download at run time).

Each encoder class names its checkpoint layout with a :class:`CheckpointFormat`:

* which container key holds the weights (OpenMMLab: ``state_dict``; VGGSound: ``model_state_dict``;
  a torchvision file is the bare state dict),
* which key prefixes to strip (``backbone.`` for OpenMMLab, ``audnet.`` for VGGSound, ``module.`` from
  DataParallel) and which prefix to add to reach the encoder's own names (``net.`` for torchvision wrappers),
* which keys are the pretraining classifier and are **ignored** (``cls_head.*`` in OpenMMLab files,
  ``audnet.fc.*`` in VGGSound's, ``fc.*`` in torchvision's): MBCD puts its own heads on the pooled feature.

After remapping, the check is strict: every missing key, every unexpected key and every shape mismatch is
reported by name together with the file, in one :class:`CheckpointError`. Two tolerances, both documented:
BatchNorm ``num_batches_tracked`` counters absent from old files are kept at the module's value, and for
encoders that declare ``adapt_input_conv`` a 3-channel RGB first conv is averaged over its input channels
and repeated to the modality's channel count (the usual cross-modality init of flow/audio stems).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn


class CheckpointError(ValueError):
    """A checkpoint that does not fit the encoder; the message names the file and the offending keys."""


@dataclass(frozen=True)
class CheckpointFormat:
    """How a public checkpoint file maps onto an encoder's ``state_dict`` names."""

    name: str
    containers: tuple[str, ...] = ("state_dict", "model_state_dict", "model")
    strip: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    add: str = ""
    adapt_input_conv: str | None = None


MMACTION = CheckpointFormat("OpenMMLab mmaction2", strip=("module.", "backbone."), ignore=("cls_head.",))
VGGSOUND = CheckpointFormat("VGGSound", strip=("module.", "audnet."), ignore=("fc.", "fc_."))


def read_state_dict(path: str | Path, fmt: CheckpointFormat, allow_pickle: bool = False) -> dict[str, Tensor]:
    """Read ``path`` (CPU), unwrap the container and return the tensors only.

    ``weights_only`` unpickling is used unless ``allow_pickle`` (a trusted file whose metadata holds
    arbitrary objects).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found ({fmt.name} format expected)")
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: cannot be read with weights_only unpickling ({str(err).splitlines()[0]}); if you trust the "
            "file, load it with allow_pickle=True"
        ) from None
    except Exception as err:  # noqa: BLE001 - torch raises many types for a corrupt file
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from None
    if isinstance(obj, dict):
        for key in fmt.containers:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{path}: no state dict of tensors found (looked for a bare state dict or one under "
            f"{', '.join(map(repr, fmt.containers))})"
        )
    return dict(obj)


def remap(state: dict[str, Tensor], fmt: CheckpointFormat) -> dict[str, Tensor]:
    """Strip the known prefixes (each at most once, in order), drop classifier keys, add the module prefix."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        for prefix in fmt.strip:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        if any(key.startswith(p) for p in fmt.ignore):
            continue
        out[fmt.add + key] = value
    return out


def _adapt_input_conv(state: dict[str, Tensor], module: nn.Module, name: str) -> None:
    """RGB (out, 3, ...) first-conv weights -> (out, C, ...) by averaging over the 3 input channels."""
    src, dst = state.get(name), module.state_dict().get(name)
    if src is None or dst is None or src.shape == dst.shape:
        return
    if src.dim() == dst.dim() and src.shape[1] == 3 and src.shape[0] == dst.shape[0] and src.shape[2:] == dst.shape[2:]:
        state[name] = src.mean(dim=1, keepdim=True).expand_as(dst).contiguous()


def _names(keys: list[str], limit: int = 100) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... and {len(keys) - limit} more" if len(keys) > limit else "")


def check_state_dict(module: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Strict comparison of names and shapes; raises one CheckpointError naming every problem."""
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} (file {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_names(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_names(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es): {_names(shapes)}")
    if problems:
        raise CheckpointError(f"{source}: does not fit {type(module).__name__}: " + "; ".join(problems))


def load_pretrained(encoder: nn.Module, path: str | Path, allow_pickle: bool = False) -> None:
    """Load a local checkpoint into ``encoder`` strictly, using the encoder class's ``CHECKPOINT`` format.

    Classifier weights of the pretraining task (``cls_head.*``, ``audnet.fc.*``, torchvision ``fc.*``) are
    ignored; every other key must exist in the encoder with the same shape and every encoder key must be in
    the file, else :class:`CheckpointError` names the file and each offending key.
    """
    fmt: CheckpointFormat | None = getattr(encoder, "CHECKPOINT", None)
    if fmt is None:
        raise CheckpointError(f"{path}: encoder {type(encoder).__name__} declares no checkpoint format")
    state = remap(read_state_dict(path, fmt, allow_pickle), fmt)
    if fmt.adapt_input_conv:
        _adapt_input_conv(state, encoder, fmt.adapt_input_conv)
    check_state_dict(encoder, state, f"{path} ({fmt.name} format)")
    own = encoder.state_dict()
    for key in own:  # old files without BN counters keep the module's
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = own[key]
    encoder.load_state_dict(state, strict=True)
