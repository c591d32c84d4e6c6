"""Extraction of frames, optical flow and audio spectrograms into training-ready caches.

Importing the package registers one extractor per modality in :data:`EXTRACTORS`; :func:`open_cache` is the
reader training uses.
"""

from mbcd.extract import audio, flow, frames  # noqa: F401  (registers the extractors)
from mbcd.extract.base import EXTRACTORS, ClipError, Extractor
from mbcd.extract.cache import open_cache
from mbcd.extract.runner import extract_domain, read_manifest

__all__ = ["EXTRACTORS", "ClipError", "Extractor", "extract_domain", "open_cache", "read_manifest"]
