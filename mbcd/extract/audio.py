"""Audio: read a wav (soundfile) or a video's audio track (decord ``AudioReader``), cut the segment by
``start_sec``/``stop_sec``, resample with torchaudio, tile to ``seconds``, and compute the spectrogram.

``features: stft`` is the protocol's spectrogram (data.md §1): ``log(|STFT| + 1e-7)`` with ``window``-sample
Hann windows and ``overlap`` samples of overlap (no centre padding: 10 s at 16 kHz, 512/353 gives 257 x 1004),
then per-sample z-normalisation. The public code takes scipy's PSD (``|STFT|^2``, Tukey window); after the log
the square is a factor 2 and the scale an offset, both removed by the z-normalisation. ``features: logmel``
is ``log(mel + 1e-7)`` with ``n_mels`` bands, z-normalised the same way. Stored as float16 ``(F, T)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import decord
import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
import torchaudio.transforms as AT

from mbcd.extract.base import EXTRACTORS, ClipError, Extractor, optional_float
from mbcd.extract.frames import _short

WAV_SUFFIXES = (".wav", ".flac", ".ogg")


def _read_wav(path: Path, start: float, stop: float | None) -> tuple[np.ndarray, int]:
    """Only the segment's samples of a wav (mono mix), and the file's rate."""
    try:
        rate = sf.info(str(path)).samplerate
        first = int(round(start * rate))
        last = None if stop is None else int(round(stop * rate))
        data, _ = sf.read(str(path), start=first, stop=last, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise ClipError(path, f"cannot read audio ({err})") from None
    return data.mean(axis=1), rate


def _read_track(path: Path, start: float, stop: float | None) -> tuple[np.ndarray, int]:
    """A video's audio track (decord, native rate, mono) cut to the segment."""
    try:
        with av.open(str(path)) as container:
            streams = container.streams.audio
            if not streams:
                raise ClipError(path, "video has no audio track")
            rate = int(streams[0].rate)
    except av.error.FFmpegError as err:
        raise ClipError(path, f"cannot open video ({err})") from None
    try:
        samples = decord.AudioReader(str(path), sample_rate=-1, mono=True)[:].asnumpy()[0]
    except (decord.DECORDError, RuntimeError) as err:
        raise ClipError(path, f"cannot decode audio track ({_short(err)})") from None
    first = int(round(start * rate))
    last = samples.size if stop is None else int(round(stop * rate))
    return samples[first:last].astype(np.float32), rate


def tile_to(samples: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` samples, repeating a shorter signal from its start (the protocol's tiling)."""
    reps = -(-n // samples.size)
    return np.tile(samples, reps)[:n]


def znorm(spec: torch.Tensor) -> torch.Tensor:
    """Per-sample z-normalisation over the whole spectrogram."""
    return (spec - spec.mean()) / (spec.std() + 1e-8)


@EXTRACTORS.register("audio")
class AudioExtractor(Extractor):
    """Audio segment -> float16 ``(F, T)`` spectrogram (protocol STFT or log-mel)."""

    modality = "audio"
    dtype = np.dtype(np.float16)

    def __init__(self, cfg: dict[str, Any], root: str | Path) -> None:
        super().__init__(cfg, root)
        if cfg["overlap"] >= cfg["window"]:
            raise ValueError(f"extract.audio.overlap ({cfg['overlap']}) must be smaller than window ({cfg['window']})")
        self.n_samples = int(round(cfg["seconds"] * cfg["sample_rate"]))
        if self.n_samples < cfg["window"]:
            raise ValueError(f"extract.audio.seconds gives {self.n_samples} samples, fewer than one window")
        self.hop = cfg["window"] - cfg["overlap"]
        self._window = torch.hann_window(cfg["window"])
        self._mel = None
        if cfg["features"] == "logmel":
            self._mel = AT.MelSpectrogram(
                sample_rate=cfg["sample_rate"], n_fft=cfg["window"], hop_length=self.hop,
                n_mels=cfg.get("n_mels", 64), center=False,
            )  # fmt: skip

    @property
    def shape(self) -> tuple[int, ...]:
        frames = 1 + (self.n_samples - self.cfg["window"]) // self.hop
        bins = self.cfg.get("n_mels", 64) if self._mel is not None else self.cfg["window"] // 2 + 1
        return (bins, frames)

    def source_file(self, row: dict[str, str]) -> str:
        return (row.get("audio") or "").strip()

    def waveform(self, row: dict[str, str]) -> np.ndarray:
        """The segment at ``sample_rate``, tiled/cut to ``seconds`` and clipped to [-1, 1]."""
        rel = (row.get("audio") or "").strip()
        if not rel:
            raise ClipError("manifest column audio", f"clip {row.get('clip_id')} has no audio source")
        path = self.path(rel)
        if not path.is_file():
            raise ClipError(path, "audio file not found")
        start = optional_float(row, "start_sec") or 0.0
        stop = optional_float(row, "stop_sec")
        if stop is not None and stop <= start:
            raise ClipError(path, f"zero-length segment (start_sec {start}, stop_sec {stop})")
        reader = _read_wav if rel.lower().endswith(WAV_SUFFIXES) else _read_track
        samples, rate = reader(path, start, stop)
        if samples.size == 0:
            raise ClipError(path, f"no audio samples in segment [{start}, {stop}) s")
        wave = torch.from_numpy(np.ascontiguousarray(samples))
        if rate != self.cfg["sample_rate"]:
            wave = AF.resample(wave, rate, self.cfg["sample_rate"])
        return np.clip(tile_to(wave.numpy(), self.n_samples), -1.0, 1.0)

    def spectrogram(self, wave: np.ndarray) -> np.ndarray:
        """``(n_samples,)`` waveform -> z-normalised log spectrogram ``(F, T)`` float16."""
        x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
        if self._mel is not None:
            power = self._mel(x)
        else:
            power = torch.stft(
                x, n_fft=self.cfg["window"], hop_length=self.hop, window=self._window,
                center=False, return_complex=True,
            ).abs()  # fmt: skip
        return znorm(torch.log(power + 1e-7)).numpy().astype(np.float16)

    def extract(self, row: dict[str, str]) -> np.ndarray:
        return self.spectrogram(self.waveform(row))
