"""MBCD's components, one small module each (method.md §2–§4, §7), composed by :class:`mbcd.algorithms.mbcd.MBCD`."""

from mbcd.algorithms.components.amd import AdaptiveModalityDropout
from mbcd.algorithms.components.distill import distillation_terms, kl_teacher_student
from mbcd.algorithms.components.dsu import dsu_perturb
from mbcd.algorithms.components.gcc import GradientConsistency, lookahead
from mbcd.algorithms.components.teacher import WeightAveragedTeacher

__all__ = [
    "AdaptiveModalityDropout",
    "GradientConsistency",
    "WeightAveragedTeacher",
    "distillation_terms",
    "dsu_perturb",
    "kl_teacher_student",
    "lookahead",
]
