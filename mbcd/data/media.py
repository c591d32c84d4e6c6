"""Writing real media files: H.264 (+AAC) mp4 with PyAV, 16-bit PCM wav with soundfile.

Used by the bundled-benchmark generator and by the toy layouts of :mod:`mbcd.testing.layouts`.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import soundfile as sf


def _as_rgb(frames: np.ndarray) -> np.ndarray:
    """``(T, H, W)`` grayscale or ``(T, H, W, 3)`` uint8 -> ``(T, H, W, 3)`` uint8 with even H and W."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W) or (T, H, W, 3), got shape {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"H.264 (yuv420p) needs even height and width, got {frames.shape[1]}x{frames.shape[2]}")
    return frames


def make_video(
    path: str | Path,
    frames: np.ndarray,
    fps: int,
    audio: np.ndarray | None = None,
    audio_rate: int = 16000,
    crf: int = 12,
) -> Path:
    """Write ``frames`` (uint8, ``(T,H,W,3)`` RGB or ``(T,H,W)`` gray) as H.264 mp4, plus a mono AAC track.

    ``audio`` is float in [-1, 1], shape ``(S,)``. Encoding is single-threaded and uses fixed options, so the
    same input gives the same decoded content on every run (what the generator's determinism relies on).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = _as_rgb(frames)
    with av.open(str(path), mode="w", format="mp4") as out:
        video = out.add_stream("libx264", rate=int(fps))
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = "yuv420p"
        video.options = {"crf": str(crf), "preset": "ultrafast", "tune": "zerolatency"}
        video.codec_context.thread_count = 1
        stream_a = None
        if audio is not None:
            stream_a = out.add_stream("aac", rate=int(audio_rate), layout="mono")
        for img in frames:
            for pkt in video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                out.mux(pkt)
        for pkt in video.encode():
            out.mux(pkt)
        if stream_a is not None:
            samples = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="flt", layout="mono")
            frame.sample_rate = int(audio_rate)
            for pkt in stream_a.encode(frame):
                out.mux(pkt)
            for pkt in stream_a.encode(None):
                out.mux(pkt)
    return path


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> Path:
    """Write mono float samples in [-1, 1] as a 16-bit PCM wav."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0), int(rate), subtype="PCM_16")
    return path
