"""Test helpers that write real media: toy EPIC-Kitchens / HAC / video-folder layouts, mp4 and wav writers.

Everything here writes real files (H.264 mp4 with PyAV, JPEG with OpenCV, wav with soundfile, pickled
pandas DataFrames, CSVs) in the public formats, so adapters and extraction are tested against the real thing.
"""

from mbcd.testing.layouts import (
    make_epic_layout,
    make_hac_layout,
    make_video,
    make_video_folder_layout,
    write_wav,
)

__all__ = ["make_epic_layout", "make_hac_layout", "make_video", "make_video_folder_layout", "write_wav"]
