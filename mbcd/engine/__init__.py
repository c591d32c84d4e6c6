"""The training engine: cached datasets, the train/eval loop, checkpoints, model selection, evaluation.

``mbcd.stages.train`` and ``mbcd.stages.evaluate`` are thin commands over :func:`mbcd.engine.loop.run_training`
and :func:`mbcd.engine.evaluation.evaluate`; model-selection policies live in :mod:`mbcd.engine.selection`.
"""

from __future__ import annotations

from mbcd.engine.selection import SELECTION, select_epoch

__all__ = ["SELECTION", "select_epoch"]
