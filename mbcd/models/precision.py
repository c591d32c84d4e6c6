"""Speed switches for GPU runs: channels-last memory format, bf16 autocast and ``torch.compile``.

All three are read from ``params.train`` (``channels_last``, ``amp``, ``compile``) and are off in the default
params (the CPU study gains nothing from them). They are honoured as given on any device; ``amp`` means
bfloat16 autocast (no loss scaling needed, unlike fp16). Encoders keep their ``stem``/``trunk`` API when
compiled: :func:`compile_encoder` compiles the two methods in place rather than wrapping the module.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mbcd.models.encoders import Encoder


def memory_format_for(ndim: int) -> torch.memory_format | None:
    """channels_last for 4-D (2-D conv) tensors, channels_last_3d for 5-D (3-D conv) tensors, else None."""
    return {4: torch.channels_last, 5: torch.channels_last_3d}.get(ndim)


def to_channels_last(x: Tensor) -> Tensor:
    """An input batch in the channels-last layout matching its rank (unchanged for other ranks)."""
    fmt = memory_format_for(x.dim())
    return x if fmt is None else x.contiguous(memory_format=fmt)


def apply_channels_last(module: nn.Module) -> nn.Module:
    """Convert every 4-D/5-D parameter and buffer of ``module`` to channels-last, in place.

    ``Module.to(memory_format=...)`` handles only one rank at a time; encoders mix 2-D and 3-D convs.
    """
    for t in list(module.parameters()) + list(module.buffers()):
        fmt = memory_format_for(t.dim())
        if fmt is not None:
            t.data = t.data.contiguous(memory_format=fmt)
    return module


@contextlib.contextmanager
def autocast(device: torch.device | str, enabled: bool) -> Iterator[None]:
    """bf16 autocast on ``device`` when ``enabled``, else a no-op context."""
    device_type = torch.device(device).type
    with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=enabled):
        yield


def compile_encoder(encoder: nn.Module, backend: str = "inductor") -> nn.Module:
    """Compile an encoder's ``stem`` and ``trunk`` (instance attributes shadow the methods) and return it.

    ``forward`` calls ``self.trunk(self.stem(x))`` so it runs compiled too, and the look-ahead step's
    ``forward(h, from_stem=True)`` compiles only the trunk. The state dict is unchanged.
    """
    for name in ("stem", "trunk"):  # compile the class function, bind it to this instance:
        fn = torch.compile(getattr(type(encoder), name), backend=backend)
        setattr(encoder, name, types.MethodType(fn, encoder))  # a deepcopy (the EMA teacher) rebinds to the copy
    return encoder


@dataclass(frozen=True)
class Precision:
    """The three switches of ``params.train``; build with :meth:`from_params`."""

    amp: bool = False
    channels_last: bool = False
    compile: bool = False

    @classmethod
    def from_params(cls, train: Mapping[str, Any]) -> Precision:
        """From the ``train`` section (missing keys are off)."""
        for key in ("amp", "channels_last", "compile"):
            if not isinstance(train.get(key, False), bool):
                raise ValueError(f"train.{key}: expected true/false, got {train.get(key)!r}")
        return cls(bool(train.get("amp")), bool(train.get("channels_last")), bool(train.get("compile")))

    def prepare(self, module: nn.Module, backend: str = "inductor") -> nn.Module:
        """Apply channels-last and compilation to a model (every encoder in it when compiling)."""
        if self.channels_last:
            apply_channels_last(module)
        if self.compile:
            encoders = [m for m in module.modules() if isinstance(m, Encoder)]
            for enc in encoders:
                compile_encoder(enc, backend)
            if not encoders:
                module.compile(backend=backend)
        return module

    def input(self, x: Tensor) -> Tensor:
        """An input batch in the model's memory format."""
        return to_channels_last(x) if self.channels_last else x

    def autocast(self, device: torch.device | str) -> contextlib.AbstractContextManager[None]:
        return autocast(device, self.amp)
