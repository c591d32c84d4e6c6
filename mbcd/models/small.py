"""Small from-scratch encoders for the bundled benchmark and the tests (CPU-sized).

``small3d`` (rgb, flow): four Conv3d-BN-ReLU blocks of widths ``w, 2w, 4w, 8w``; the first block is spatial
only (kernel 1x3x3, as in the slow pathway of SlowFast, cheap on large frames), the others 3x3x3.
``small2d`` (audio spectrograms ``(B, 1, F, T)``): four Conv2d-BN-ReLU blocks of the same widths.
``norm`` (``model.encoder_args.<modality>.norm``) picks the normalisation layer of every block: ``batch``
(default), ``group`` (GroupNorm: per-sample statistics, so data-parallel ranks compute exactly what one process
computes on the global batch) or ``none``.
Every block halves the spatial size; the temporal size is halved by the middle blocks only.
stem = the first three blocks; trunk = the last block + global average pooling, ``out_dim = 8w``.

Sized for the default study (rgb/flow 8x48x48, audio 129x~100 at 8 kHz): with ``width=12`` a batch of 32
runs forward+backward in well under 0.1 s per encoder on one CPU core (see ``mbcd bench encoders``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import Tensor, nn

from mbcd.models.encoders import Encoder, global_pool
from mbcd.registries import ENCODERS

NORMS: dict[str, Callable[[int, int], nn.Module]] = {
    "batch": lambda dims, c: (nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d)(c),
    "group": lambda dims, c: nn.GroupNorm(math.gcd(c, 8), c),
    "none": lambda dims, c: nn.Identity(),
}
"""Normalisation layer per ``norm`` name: ``(spatial dims, channels) -> module``."""


def _block(
    dims: int, cin: int, cout: int, kernel: tuple[int, ...], stride: tuple[int, ...], norm: str = "batch"
) -> nn.Sequential:
    """Conv (bias only without a norm layer) -> norm -> ReLU, 'same' padding."""
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    pad = tuple(k // 2 for k in kernel)
    return nn.Sequential(
        conv(cin, cout, kernel, stride=stride, padding=pad, bias=norm == "none"),
        NORMS[norm](dims, cout),
        nn.ReLU(inplace=True),
    )


class _SmallConv(Encoder):
    """Shared body of small3d/small2d: ``blocks`` (stem) then ``last`` (trunk) and a global pool."""

    TRUNK = ("last",)
    DIMS = 3

    def __init__(self, modality: str, width: int = 12, norm: str = "batch") -> None:
        super().__init__(modality)
        if width < 1:
            raise ValueError(f"{type(self).__name__}: width must be >= 1, got {width}")
        if norm not in NORMS:
            raise ValueError(
                f"{type(self).__name__}: norm {norm!r} is not allowed; expected one of: {', '.join(NORMS)}"
            )
        d = self.DIMS
        ws = [width, 2 * width, 4 * width, 8 * width]
        if d == 3:  # (kernel, stride) per block as (T, H, W)
            spec = [((1, 3, 3), (1, 2, 2)), ((3, 3, 3), (2, 2, 2)), ((3, 3, 3), (2, 2, 2)), ((3, 3, 3), (1, 2, 2))]
        else:  # (F, T)
            spec = [((3, 3), (2, 2))] * 4
        cins = [self.in_channels] + ws[:-1]
        blocks = [_block(d, ci, co, k, s, norm) for ci, co, (k, s) in zip(cins, ws, spec, strict=True)]
        self.blocks = nn.Sequential(*blocks[:-1])
        self.last = blocks[-1]
        self.out_dim = ws[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def stem(self, x: Tensor) -> Tensor:
        if x.dim() != self.DIMS + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__}({self.modality}): expected input (B, {self.in_channels}, "
                f"{'T, H, W' if self.DIMS == 3 else 'F, T'}), got {tuple(x.shape)}"
            )
        return self.blocks(x)

    def trunk(self, h: Tensor) -> Tensor:
        return global_pool(self.last(h))


@ENCODERS.register("small3d")
class Small3D(_SmallConv):
    """3-D conv encoder for rgb ``(B, 3, T, H, W)`` and flow ``(B, 2, T, H, W)`` clips, trained from scratch."""

    MODALITIES = ("rgb", "flow")
    DIMS = 3


@ENCODERS.register("small2d")
class Small2D(_SmallConv):
    """2-D conv encoder for audio spectrograms ``(B, 1, F, T)``, trained from scratch."""

    MODALITIES = ("audio",)
    DIMS = 2
