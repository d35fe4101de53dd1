"""read_audio: the default audio stream as float32 mono at a given rate, resampled in-process by PyAV."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .base import _MAX_BAD_PACKETS, _check_file, _warn_truncated
from .probing import _audio_stream, _drain, _open_container


def read_audio(path: str | os.PathLike[str], sample_rate: int = 16000) -> np.ndarray:
    """Decode the (default) audio stream to float32 mono in [-1, 1] at ``sample_rate``.

    Resampling and down-mixing are done in-process by PyAV's ``AudioResampler``.
    Returns an empty array when the file has no audio stream. A file that
    breaks part-way returns the audio decoded so far (with a RuntimeWarning).
    """
    import av

    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    spath = _check_file(path)
    container = _open_container(spath)
    try:
        stream = _audio_stream(container)
        if stream is None:
            return np.zeros(0, dtype=np.float32)
        stream.thread_type = "AUTO"
        resampler = av.AudioResampler(format="flt", layout="mono", rate=int(sample_rate))
        chunks: list[np.ndarray] = []
        done = 0.0
        bad = 0

        def take(frames: list[Any]) -> None:
            for out in frames:
                chunks.append(np.asarray(out.to_ndarray(), dtype=np.float32).reshape(-1))

        def take_all(decoded: list[Any]) -> None:
            for frame in decoded:
                take(resampler.resample(frame))

        demux = container.demux(stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                break
            except (av.error.FFmpegError, EOFError) as exc:
                _warn_truncated(spath, "audio", done, exc)
                take_all(_drain(stream))
                break
            try:
                decoded = packet.decode()
            except av.error.EOFError:
                break
            except av.error.FFmpegError as exc:
                bad += 1
                if bad >= _MAX_BAD_PACKETS:
                    _warn_truncated(spath, "audio", done, exc)
                    break
                continue
            bad = 0
            for frame in decoded:
                if frame.time is not None:
                    done = float(frame.time)
                take(resampler.resample(frame))
        take(resampler.resample(None))
    finally:
        container.close()
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    audio = np.concatenate(chunks)
    np.clip(audio, -1.0, 1.0, out=audio)
    return audio
