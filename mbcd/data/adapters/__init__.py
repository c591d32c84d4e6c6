"""Dataset adapters; importing this package registers each one in ``registries.ADAPTERS``."""

from mbcd.data.adapters import epic_kitchens, hac, synth, video_folder  # noqa: F401  (registration)
from mbcd.data.adapters.base import Adapter, check_rows

__all__ = ["Adapter", "check_rows"]
