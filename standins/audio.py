"""Audio helpers shared by the stand-ins: WAV files, G.711 μ-law, 20 ms framing."""

import wave
from pathlib import Path

import numpy as np

from telephony.mulaw import pcm_to_ulaw, ulaw_to_pcm

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "ULAW_SILENCE",
    "duration_ms",
    "frames_of",
    "pcm_to_ulaw",
    "read_wav",
    "ulaw_to_pcm",
    "voice_span",
    "write_wav",
]

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 160 samples, 160 μ-law bytes
ULAW_SILENCE = 0xFF


def read_wav(path: str | Path) -> bytes:
    """Return the 16-bit mono PCM of an 8 kHz WAV file, or raise ValueError naming the problem."""
    with wave.open(str(path), "rb") as w:
        if (w.getframerate(), w.getsampwidth(), w.getnchannels()) != (SAMPLE_RATE, 2, 1):
            raise ValueError(
                f"{path}: need 8 kHz 16-bit mono WAV, got {w.getframerate()} Hz "
                f"{8 * w.getsampwidth()}-bit {w.getnchannels()} channel(s)"
            )
        return w.readframes(w.getnframes())


def write_wav(path: str | Path, pcm: bytes, sample_rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit mono PCM to a WAV file."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)


def frames_of(ulaw: bytes, size: int = FRAME_SAMPLES) -> list[bytes]:
    """Split μ-law audio into 20 ms frames, padding the last one with silence."""
    padded = ulaw + bytes([ULAW_SILENCE]) * (-len(ulaw) % size)
    return [padded[i : i + size] for i in range(0, len(padded), size)]


def duration_ms(pcm: bytes, sample_rate: int = SAMPLE_RATE) -> float:
    """Duration of 16-bit mono PCM in milliseconds."""
    return len(pcm) / 2 / sample_rate * 1000


def voice_span(pcm: bytes, threshold: float = 500.0) -> tuple[float, float]:
    """Start and end (seconds) of the voiced part of 8 kHz PCM, by 20 ms RMS over `threshold`."""
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    frames = samples[: len(samples) // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
    voiced = np.flatnonzero(np.sqrt((frames**2).mean(axis=1)) > threshold)
    if not len(voiced):
        return 0.0, 0.0
    return voiced[0] * FRAME_MS / 1000, (voiced[-1] + 1) * FRAME_MS / 1000
