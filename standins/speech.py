"""Deterministic fake speech: a synthetic TTS voice and a recognizer for a catalogue of recordings.

`synthesize()` turns text into voiced bursts (one per word) that a VAD hears as speech.
`Recognizer` names which known recording a stretch of audio is, by the shape of its loudness
over time, so the STT stand-in can return real transcripts without a speech model.
"""

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from standins.audio import read_wav

FRAME_S = 0.02
SPEECH_DB = 35.0  # a 20 ms frame louder than this (RMS ~56 of 32767) counts as speech
FLOOR_DB = 20.0  # envelopes are floored here so line noise and μ-law zero look alike
MATCH_THRESHOLD = 0.8  # below this score (correlation × coverage) speech is unrecognized
MIN_MATCH_S = 0.3  # less speech than this is too little to recognize: empty transcript
UNRECOGNIZED = "(unrecognized speech)"

_MS_PER_CHAR = 55
_WORD_MS = (150, 600)
_GAP_MS, _SENTENCE_GAP_MS = 60, 250
_RAMP_S = 0.03
_PEAK = 12000
_MAX_HARMONIC_HZ = 3800
_SYLLABLE_MS = 150
# Formants (F1..F4, Hz) of five vowels; a word glides from one to the next, syllable by syllable.
# Harmonics stop below 3.8 kHz, so every sample rate carries the same telephone-band voice.
_VOWELS = (
    (730, 1090, 2440, 3500),
    (270, 2290, 3010, 3500),
    (300, 870, 2240, 3500),
    (530, 1840, 2480, 3500),
    (570, 840, 2410, 3500),
)
_SENTENCE_END = re.compile(r"[.?!][\"')\]]*$")


@dataclass(frozen=True)
class WordTiming:
    """One word and where it is in the audio, in seconds."""

    word: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Synthesis:
    """Audio of synthesized text: 16-bit mono PCM and the timing of every word."""

    pcm: bytes
    words: list[WordTiming]
    sample_rate: int = 8000

    @property
    def duration_s(self) -> float:
        """Length of the audio in seconds."""
        return len(self.pcm) / 2 / self.sample_rate


def _word_seed(word: str) -> int:
    """A stable number for a word (Python's hash() changes between runs)."""
    core = re.sub(r"\W", "", word.lower()) or word
    return int.from_bytes(hashlib.blake2b(core.encode(), digest_size=4).digest(), "big")


def _word_ms(word: str) -> int:
    chars = len(re.sub(r"\W", "", word)) or len(word)
    return min(max(_MS_PER_CHAR * chars, _WORD_MS[0]), _WORD_MS[1])


def _voiced_burst(word: str, n: int, sample_rate: int) -> np.ndarray:
    """A voiced burst: harmonics of a falling pitch through formants that glide per syllable."""
    seed = _word_seed(word)
    progress = np.arange(n) / max(n - 1, 1)
    f0 = (100 + seed % 80) * (1.1 - 0.2 * progress)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    syllables = max(1, round(n / sample_rate * 1000 / _SYLLABLE_MS))
    vowels = np.array([_VOWELS[(seed >> (3 * i)) % len(_VOWELS)] for i in range(syllables + 1)])
    position = progress * syllables
    index = np.minimum(position.astype(int), syllables - 1)
    glide = (position - index)[:, None] ** 3
    formants = (vowels[index] + (vowels[index + 1] - vowels[index]) * glide).T  # (4, n)
    out = np.zeros(n)
    for k in range(1, int(_MAX_HARMONIC_HZ / f0.max()) + 1):
        distance = (k * f0 - formants) / (60.0 * (1 + formants / 2000))
        out += (1.0 / (1.0 + distance**2)).sum(axis=0) / k * np.sin(k * phase)
    out *= 1 - 0.3 * (0.5 + 0.5 * np.cos(2 * np.pi * position))  # dips between syllables
    ramp = min(int(_RAMP_S * sample_rate), n // 2)
    window = np.ones(n)
    window[:ramp] = np.sin(np.linspace(0, np.pi / 2, ramp)) ** 2
    window[n - ramp :] = window[:ramp][::-1]
    return out * window * (_PEAK / max(np.abs(out).max(), 1e-9))


def synthesize(text: str, sample_rate: int = 8000) -> Synthesis:
    """Speak text in a fake but deterministic voice.

    Each word is a voiced burst of ~55 ms per character (150..600 ms), followed by 60 ms of
    silence, or 250 ms after sentence-ending punctuation; the last word keeps its pause too, so
    consecutive syntheses join naturally.

    Args:
        text: The text to speak; words are split on whitespace.
        sample_rate: Output sample rate in Hz (8000, 16000, 24000...).

    Returns:
        The 16-bit mono PCM and the timing of every word.
    """
    pieces: list[np.ndarray] = []
    words: list[WordTiming] = []
    cursor = 0
    for word in text.split():
        n = _word_ms(word) * sample_rate // 1000
        gap_ms = _SENTENCE_GAP_MS if _SENTENCE_END.search(word) else _GAP_MS
        gap = gap_ms * sample_rate // 1000
        pieces += [_voiced_burst(word, n, sample_rate), np.zeros(gap)]
        words.append(WordTiming(word, cursor / sample_rate, (cursor + n) / sample_rate))
        cursor += n + gap
    samples = np.concatenate(pieces) if pieces else np.zeros(0)
    return Synthesis(samples.astype(np.int16).tobytes(), words, sample_rate)
