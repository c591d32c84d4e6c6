"""Late-fusion multi-modal network shared by every algorithm (method.md §1).

Per modality k: encoder θ_k -> pooled feature -> LayerNorm (equalises feature scale across encoders) -> z_k;
an optional uni-modal head φ_k on z_k; fusion = concatenation of the (optionally masked) z_k, then the fused
head φ_mm. Encoders, LayerNorms and heads live in ``nn.ModuleDict``s keyed by modality, so one code path
serves V+A, V+F, A+F, V+A+F and a single modality.

The pieces are exposed separately (``stem``, ``trunk``, ``normalize``, ``fuse``) because MBCD's look-ahead
re-runs only the trainable stage at shifted weights on the cached stem output (method.md §3).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from mbcd.modality import MODALITIES
from mbcd.models.encoders import Encoder, build_encoder
from mbcd.models.heads import build_head


def _load_pretrained(encoder: Encoder, path: str, modality: str) -> None:
    """Load a local checkpoint strictly (never downloads); errors name the modality's params key."""
    from mbcd.models.checkpoint import load_pretrained

    try:
        load_pretrained(encoder, path)
    except (FileNotFoundError, KeyError, RuntimeError, ValueError) as err:
        raise ValueError(f"model.pretrained.{modality}: {err}") from err


class MultiModalNet(nn.Module):
    """Encoders + LayerNorms + uni-modal heads + fused head over the concatenation.

    ``model_params`` is the ``params.model`` section. With ``unimodal_heads=False`` only the fused head is built
    (ERM, EMA). ``freeze_stem`` freezes each encoder's stem (pretrained protocol); the look-ahead parameters
    θ_k are then the trunk's, otherwise every encoder parameter.
    """

    def __init__(
        self, modalities: tuple[str, ...], num_classes: int, model_params: dict[str, Any], unimodal_heads: bool = True
    ) -> None:
        super().__init__()
        if not modalities:
            raise ValueError("MultiModalNet: at least one modality is needed")
        enc_names = model_params["encoders"]
        enc_args = model_params.get("encoder_args", {}) or {}
        pretrained = model_params.get("pretrained", {}) or {}
        self.modalities = tuple(modalities)
        self.num_classes = num_classes
        self.frozen_stem = bool(model_params.get("freeze_stem", False))
        encoders: dict[str, Encoder] = {}
        for m in self.modalities:
            if m not in MODALITIES:
                raise ValueError(f"unknown modality {m!r}; expected one of: {', '.join(MODALITIES)}")
            if m not in enc_names:
                raise ValueError(f"model.encoders: no encoder configured for modality {m!r}")
            enc = build_encoder(enc_names[m], m, **enc_args.get(m, {}))
            if m in pretrained:
                _load_pretrained(enc, pretrained[m], m)
            if self.frozen_stem:
                enc.freeze_stem(bool(model_params.get("freeze_bn_stats", False)))
            encoders[m] = enc
        self.encoders = nn.ModuleDict(encoders)
        affine = bool(model_params.get("layernorm_affine", False))
        self.norms = nn.ModuleDict({m: nn.LayerNorm(e.out_dim, elementwise_affine=affine) for m, e in encoders.items()})
        head = model_params["head"]
        self.heads = nn.ModuleDict(
            {m: build_head(e.out_dim, num_classes, head) for m, e in encoders.items()} if unimodal_heads else {}
        )
        self.fused_head = build_head(sum(self.dims.values()), num_classes, head)

    @property
    def dims(self) -> dict[str, int]:
        """Feature width d_k per modality."""
        return {m: self.encoders[m].out_dim for m in self.modalities}

    # ------------------------------------------------------------------ pieces
    def stem(self, modality: str, x: Tensor) -> Tensor:
        """The encoder's stem output (no graph when the stem is frozen: it is cached for the look-ahead)."""
        if self.frozen_stem:
            with torch.no_grad():
                return self.encoders[modality].stem(x)
        return self.encoders[modality].stem(x)

    def trunk(self, modality: str, h: Tensor) -> Tensor:
        """Pooled feature ``(B, d_k)`` from a stem output."""
        return self.encoders[modality].trunk(h)

    def lookahead_names(self, modality: str) -> list[str]:
        """Names of θ_k: the encoder parameters that train (trunk only when the stem is frozen)."""
        return [n for n, p in self.encoders[modality].named_parameters() if p.requires_grad]

    def encode_at(self, modality: str, x: Tensor, h: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Pooled feature with the encoder's parameters replaced by ``params`` (GCC's θ'_k).

        With a frozen stem the cached stem output ``h`` is reused; otherwise the stem trains (its weights are
        in ``params``) and the whole encoder is re-run on the raw input ``x``.
        """
        enc = self.encoders[modality]
        if self.frozen_stem:
            return functional_call(enc, params, (h,), {"from_stem": True})
        return functional_call(enc, params, (x,), {"from_stem": False})

    def normalize(self, modality: str, f: Tensor) -> Tensor:
        return self.norms[modality](f)

    def fuse(self, z: dict[str, Tensor], masks: dict[str, Tensor] | None = None) -> Tensor:
        """Fused logits from per-modality features; ``masks[k]`` ((B,1) or (1,1)) multiplies z_k first."""
        parts = [z[m] * masks[m] if masks is not None and m in masks else z[m] for m in self.modalities]
        return self.fused_head(torch.cat(parts, dim=1))  # (B, Σ d_k) -> (B, C)

    def unimodal_logits(self, z: dict[str, Tensor]) -> dict[str, Tensor]:
        return {m: self.heads[m](z[m]) for m in self.modalities if m in self.heads}

    # ------------------------------------------------------------------ whole passes
    def encode(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """LayerNorm-ed pooled features ``{k: (B, d_k)}``."""
        return {m: self.normalize(m, self.trunk(m, self.stem(m, batch[m]))) for m in self.modalities}

    def forward(self, batch: dict[str, Tensor], masks: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """``{'fused': (B, C), k: (B, C) for each uni-modal head}``."""
        z = self.encode(batch)
        return {"fused": self.fuse(z, masks), **self.unimodal_logits(z)}

    def features(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per-modality normalised features and ``'fused'``, their concatenation (for analyses)."""
        z = self.encode(batch)
        return {**z, "fused": torch.cat([z[m] for m in self.modalities], dim=1)}

    def fused_copy(self) -> MultiModalNet:
        """A deep copy without the uni-modal heads: what the weight-averaged teacher needs (method.md §4)."""
        clone = copy.deepcopy(self)
        clone.heads = nn.ModuleDict()
        return clone
