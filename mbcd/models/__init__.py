"""Encoders (fusion and heads live in their own modules). Importing this package registers every encoder.

``build_encoder(name, modality, **kwargs)`` builds a registered encoder (in_channels from the modality:
rgb 3, flow 2, audio 1); ``load_pretrained(encoder, path)`` loads a local checkpoint strictly (no download
ever at run time) and names the file and every missing/unexpected/mis-shaped key when it does not fit.
"""

from __future__ import annotations

from mbcd.models import audio_resnet, slowfast, slowonly, small, tv_video  # noqa: F401  (register encoders)
from mbcd.models.checkpoint import CheckpointError, load_pretrained
from mbcd.models.encoders import IN_CHANNELS, Encoder, build_encoder

__all__ = ["IN_CHANNELS", "CheckpointError", "Encoder", "build_encoder", "load_pretrained"]
