"""Audio helpers shared by the stand-ins: WAV files, G.711 μ-law, 20 ms framing."""

import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 160 samples, 160 μ-law bytes
ULAW_SILENCE = 0xFF

_BIAS = 0x84
_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])


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


def _decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


_DECODE = _decode_table()


def ulaw_to_pcm(ulaw: bytes) -> bytes:
    """Decode G.711 μ-law bytes to 16-bit PCM."""
    return _DECODE[np.frombuffer(ulaw, dtype=np.uint8)].tobytes()


def pcm_to_ulaw(pcm: bytes) -> bytes:
    """Encode 16-bit PCM to G.711 μ-law bytes (bit-exact with the classic Sun g711.c)."""
    x = np.frombuffer(pcm, dtype=np.int16).astype(np.int32) >> 2
    mask = np.where(x < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(x), 8159) + 0x21
    segment = np.searchsorted(_SEGMENT_ENDS, magnitude)
    value = np.where(segment > 7, 0x7F, (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F))
    return (value ^ mask).astype(np.uint8).tobytes()


def frames_of(ulaw: bytes, size: int = FRAME_SAMPLES) -> list[bytes]:
    """Split μ-law audio into 20 ms frames, padding the last one with silence."""
    padded = ulaw + bytes([ULAW_SILENCE]) * (-len(ulaw) % size)
    return [padded[i : i + size] for i in range(0, len(padded), size)]


def duration_ms(pcm: bytes, sample_rate: int = SAMPLE_RATE) -> float:
    """Duration of 16-bit mono PCM in milliseconds."""
    return len(pcm) / 2 / sample_rate * 1000
