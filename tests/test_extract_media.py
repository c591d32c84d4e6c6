"""Extraction numerics on real files: frame sampling, decord decoding, flow accuracy, spectrogram shapes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mbcd.data.media import make_video, write_wav
from mbcd.extract import EXTRACTORS, ClipError
from mbcd.extract.flow import dequantise, quantise
from mbcd.extract.frames import sample_positions

torch.set_num_threads(1)
cv2.setNumThreads(1)


def _row(**cells: str) -> dict[str, str]:
    base = {"clip_id": "c0", "domain": "d", "rgb": "", "flow": "", "audio": "", "start_frame": "",
            "stop_frame": "", "start_sec": "", "stop_sec": "", "fps": ""}  # fmt: skip
    return base | cells


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random texture (blurred noise), rich enough for optical flow."""
    noise = np.random.default_rng(seed).uniform(0, 255, (h, w)).astype(np.float32)
    tex = cv2.GaussianBlur(noise, (0, 0), 2.0)
    tex = (tex - tex.min()) / (tex.max() - tex.min()) * 255
    return tex.astype(np.uint8)


def _translating(n: int, size: int, dx: int, dy: int) -> np.ndarray:
    """``n`` RGB frames of a texture moving by (dx, dy) pixels per frame."""
    big = _texture(size + n * abs(dy) + 8, size + n * abs(dx) + 8)
    frames = []
    for t in range(n):
        y0, x0 = 4 + (n - t) * dy, 4 + (n - t) * dx  # content moves by +dx, +dy each frame
        frames.append(big[y0 : y0 + size, x0 : x0 + size])
    return np.repeat(np.stack(frames)[..., None], 3, axis=-1)


def test_sample_positions_centred_and_repeating() -> None:
    assert sample_positions(10, 30, 4, 2).tolist() == [16, 18, 20, 22]  # span 7 centred in 20 frames
    assert sample_positions(0, 3, 4, 2).tolist() == [0, 2, 2, 2]  # short segment repeats its last frame
    with pytest.raises(ClipError, match="zero-length segment"):
        sample_positions(5, 5, 4, 2, "x.mp4")


@pytest.mark.parametrize("width", [48, 64])
def test_rgb_from_video_matches_written_frames(tmp_path: Path, width: int) -> None:
    """decord decoding (incl. its padded-row widths such as 48) returns the written frames, resized and cropped."""
    frames = np.zeros((12, 48, width, 3), np.uint8)
    frames[:] = (np.arange(12) * 20)[:, None, None, None]  # frame t has grey level 20 t
    make_video(tmp_path / "v.mp4", frames, fps=12)
    cfg = {"num_frames": 4, "stride": 2, "resize": 32, "crop": 32}
    out = EXTRACTORS.get("rgb")(cfg, tmp_path).extract(_row(rgb="v.mp4", start_frame="0", stop_frame="12"))
    assert out.shape == (4, 32, 32, 3) and out.dtype == np.uint8
    levels = out.reshape(4, -1).mean(axis=1)
    np.testing.assert_allclose(levels, [20 * p for p in (2, 4, 6, 8)], atol=3)  # positions 2, 4, 6, 8


@pytest.mark.parametrize("method", ["farneback", "tvl1"])
def test_computed_flow_recovers_translation(tmp_path: Path, method: str) -> None:
    """A texture translating by (+2, +1) px/frame through a real mp4: median flow within 0.3 px of the shift."""
    make_video(tmp_path / "move.mp4", _translating(10, 64, dx=2, dy=1), fps=10)
    cfg = {"method": method, "num_frames": 3, "stride": 2, "bound": 20.0, "resize": 64, "crop": 48}
    out = EXTRACTORS.get("flow")(cfg, tmp_path).extract(_row(rgb="move.mp4", start_frame="0", stop_frame="10"))
    assert out.shape == (3, 48, 48, 2) and out.dtype == np.uint8
    flow = dequantise(out[:, 8:-8, 8:-8], 20.0)  # interior, away from borders
    assert abs(np.median(flow[..., 0]) - 2.0) < 0.3, np.median(flow[..., 0])
    assert abs(np.median(flow[..., 1]) - 1.0) < 0.3, np.median(flow[..., 1])


def test_quantise_clips_and_roundtrips() -> None:
    f = np.array([-50.0, -20.0, 0.0, 5.0, 20.0, 99.0], np.float32)
    q = quantise(f, 20.0)
    assert q.tolist() == [1, 1, 128, 160, 255, 255]
    np.testing.assert_allclose(dequantise(q, 20.0)[1:5], [-20, 0, 5, 20], atol=20 / 127)


def _audio_cfg(**kw: object) -> dict:
    return {"sample_rate": 16000, "seconds": 10.0, "features": "stft", "window": 512, "overlap": 353, "n_mels": 64} | kw


def test_protocol_spectrogram_shape_and_normalisation(tmp_path: Path) -> None:
    """data.md §1: 10 s at 16 kHz, 512 window, 353 overlap -> 257 x 1004, z-normalised, from a 44.1 kHz wav."""
    t = np.arange(int(3.0 * 44100)) / 44100
    write_wav(tmp_path / "a.wav", 0.5 * np.sin(2 * np.pi * 1000 * t), 44100)
    ext = EXTRACTORS.get("audio")(_audio_cfg(), tmp_path)
    assert ext.shape == (257, 1004)
    spec = ext.extract(_row(audio="a.wav", start_sec="0.5", stop_sec="2.5"))
    assert spec.shape == (257, 1004) and spec.dtype == np.float16
    s = spec.astype(np.float32)
    assert abs(s.mean()) < 1e-2 and abs(s.std() - 1) < 1e-2
    assert int(np.argmax(s.mean(axis=1))) == 32  # 1 kHz tone: bin 1000 / (16000 / 512) = 32


def test_logmel_shape_and_resampled_track_from_mp4(tmp_path: Path) -> None:
    """log-mel from an mp4's AAC track at 16 kHz, resampled to 8 kHz, cut by start/stop seconds."""
    t = np.arange(16000 * 2) / 16000
    frames = np.zeros((20, 32, 32, 3), np.uint8)
    make_video(tmp_path / "v.mp4", frames, 10, audio=0.4 * np.sin(2 * np.pi * 500 * t), audio_rate=16000)
    cfg = _audio_cfg(sample_rate=8000, seconds=1.0, features="logmel", window=256, overlap=176, n_mels=40)
    ext = EXTRACTORS.get("audio")(cfg, tmp_path)
    wave = ext.waveform(_row(audio="v.mp4", start_sec="0.25", stop_sec="0.75"))
    assert wave.shape == (8000,)
    np.testing.assert_allclose(wave[:4000], wave[4000:], atol=1e-6)  # 0.5 s segment tiled twice
    spec = ext.spectrogram(wave)
    assert spec.shape == ext.shape == (40, 1 + (8000 - 256) // 80)
