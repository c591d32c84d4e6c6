"""MBCD: Modality-Balanced Collaborative Distillation for multi-modal domain generalization.

A reproducible pipeline (Snakemake + DVC + MLflow) around the method of Wang et al., AAAI-26
(arXiv 2511.20258) and the baselines of its tables.
"""

__version__ = "0.1.0"
