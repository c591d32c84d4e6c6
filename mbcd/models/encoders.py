"""The per-modality encoder contract and the helpers every encoder module uses.

An :class:`Encoder` maps one modality's tensor to a pooled feature of ``out_dim`` and splits into

* ``stem``  - everything that is frozen under the pretrained protocol (ResNet conv1 ... layer3), and
* ``trunk`` - the trainable last stage (ResNet layer4 / res5) plus global pooling -> ``(B, out_dim)``,

so that the MBCD look-ahead step (method.md §3) can re-run only the trainable part on cached stem output.
Which parameters belong to the trunk is declared once per class by dotted module prefixes
(``TRUNK``); everything else is the stem. Input shapes: rgb ``(B, 3, T, H, W)``, flow ``(B, 2, T, H, W)``,
audio ``(B, 1, F, T)``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from mbcd.modality import MODALITIES
from mbcd.models.checkpoint import CheckpointFormat, load_pretrained  # noqa: F401  (load_pretrained re-exported)
from mbcd.registries import ENCODERS

IN_CHANNELS: dict[str, int] = {"rgb": 3, "flow": 2, "audio": 1}
"""Input channels per modality (flow = horizontal + vertical displacement, audio = one spectrogram)."""

_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class Encoder(nn.Module):
    """Base class: subclasses set ``modality``, ``out_dim``, ``TRUNK`` and implement ``stem``/``trunk``.

    ``TRUNK`` lists the dotted names of the sub-modules that form the trainable last stage; parameters
    under those prefixes are the trunk, all others the stem. ``MODALITIES`` lists the modalities the
    architecture accepts. ``CHECKPOINT`` describes the layout of the pretrained files
    :func:`load_pretrained` reads for this class (by default: our own encoder state dict).
    """

    TRUNK: tuple[str, ...] = ()
    MODALITIES: tuple[str, ...] = MODALITIES
    CHECKPOINT = CheckpointFormat("encoder state_dict (torch.save(encoder.state_dict()))", strip=("module.",))

    def __init__(self, modality: str) -> None:
        super().__init__()
        if modality not in self.MODALITIES:
            raise ValueError(
                f"encoder {type(self).__name__} does not take modality {modality!r}; "
                f"expected one of: {', '.join(self.MODALITIES)}"
            )
        self.modality = modality
        self.out_dim = 0
        self._frozen_bn = False

    @property
    def in_channels(self) -> int:
        return IN_CHANNELS[self.modality]

    def stem(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def trunk(self, h: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor, from_stem: bool = False) -> Tensor:
        """Pooled feature ``(B, out_dim)``; ``from_stem=True`` takes a cached ``stem`` output instead."""
        return self.trunk(x if from_stem else self.stem(x))

    def _in_trunk(self, name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in self.TRUNK)

    def trunk_parameter_names(self) -> list[str]:
        """Names (as in ``named_parameters()``) of the trainable last stage's parameters."""
        return [n for n, _ in self.named_parameters() if self._in_trunk(n)]

    def stem_parameter_names(self) -> list[str]:
        return [n for n, _ in self.named_parameters() if not self._in_trunk(n)]

    def freeze_stem(self, freeze_bn_stats: bool = False) -> None:
        """Stop gradients into the stem; with ``freeze_bn_stats`` its BatchNorms also stay in eval mode.

        The protocol of SimMMDG/MBCD trains only the last stage (+ heads) of a pretrained backbone. Whether
        the frozen stem's BatchNorm running statistics still update is a separate switch (method.md table).
        """
        for name, p in self.named_parameters():
            if not self._in_trunk(name):
                p.requires_grad_(False)
        self._frozen_bn = freeze_bn_stats
        self.train(self.training)

    def train(self, mode: bool = True) -> Encoder:
        """``nn.Module.train`` that keeps the frozen stem's BatchNorms in eval mode when asked to."""
        super().train(mode)
        if self._frozen_bn:
            for name, m in self.named_modules():
                if isinstance(m, _BN_TYPES) and not self._in_trunk(name):
                    m.eval()
        return self


def build_encoder(name: str, modality: str, **kwargs: Any) -> Encoder:
    """Construct the encoder registered as ``name`` for ``modality``; ``kwargs`` come from model.encoder_args."""
    if modality not in IN_CHANNELS:
        raise ValueError(f"unknown modality {modality!r}; expected one of: {', '.join(IN_CHANNELS)}")
    import mbcd.models  # noqa: F401  (fills the registry)

    try:
        cls = ENCODERS.get(name)
    except KeyError as err:
        raise ValueError(str(err.args[0])) from None
    try:
        enc = cls(modality=modality, **kwargs)
    except TypeError as err:
        raise ValueError(f"encoder {name!r} for {modality}: bad model.encoder_args ({err})") from None
    if not isinstance(enc, Encoder) or enc.out_dim <= 0:
        raise TypeError(f"encoder {name!r} did not build an Encoder with a positive out_dim")
    return enc


def global_pool(h: Tensor) -> Tensor:
    """Average over every dimension after the channel one: ``(B, C, ...)`` -> ``(B, C)``."""
    return h.flatten(2).mean(dim=2)
