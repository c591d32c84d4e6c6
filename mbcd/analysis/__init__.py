"""Post-training analyses of the paper (method.md §9), one module each, registered in ``ANALYSES``.

Importing this package registers them; ``mbcd analyse`` runs one over a study's trained runs.
"""

from __future__ import annotations

from mbcd.analysis import embeddings, flatness, imbalance, robustness  # noqa: F401  (register)
from mbcd.analysis.common import Analysis, aggregate, analysis_seed, mean_tree

__all__ = ["Analysis", "aggregate", "analysis_seed", "mean_tree"]
