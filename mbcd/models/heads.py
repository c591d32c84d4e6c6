"""Classification heads: the MLP used for every uni-modal and fused head (method.md §1).

The public port uses ``Linear(d, 512) -> ReLU -> Dropout(0.5) -> Linear(512, C)`` for every head; the hidden
width and the dropout come from ``params.model.head`` so a study can shrink them.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn


class MLPHead(nn.Module):
    """``Linear(in_dim, hidden) -> ReLU -> Dropout(dropout) -> Linear(hidden, num_classes)``."""

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 512, dropout: float = 0.5) -> None:
        super().__init__()
        if in_dim < 1 or num_classes < 1 or hidden < 1:
            raise ValueError(
                f"MLPHead: in_dim, num_classes and hidden must be >= 1, got {in_dim}, {num_classes}, {hidden}"
            )
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MLPHead: dropout must lie in [0, 1], got {dropout}")
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
        )
        self.in_dim = in_dim
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_dim)`` -> logits ``(B, num_classes)``."""
        return self.net(x)


def build_head(in_dim: int, num_classes: int, head_params: dict[str, Any]) -> MLPHead:
    """An :class:`MLPHead` from the ``model.head`` params section (keys ``hidden``, ``dropout``)."""
    return MLPHead(in_dim, num_classes, hidden=int(head_params["hidden"]), dropout=float(head_params["dropout"]))
