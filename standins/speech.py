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
_ALIGN_SLACK = 10  # frames of silence the audio may overhang a recording by, either end
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


def _formant_gains(seed: int, progress: np.ndarray, f0: np.ndarray, syllables: int) -> np.ndarray:
    """Gain of each harmonic at each point of progress (harmonics × points) as vowels glide."""
    vowels = np.array([_VOWELS[(seed >> (3 * i)) % len(_VOWELS)] for i in range(syllables + 1)])
    position = progress * syllables
    index = np.minimum(position.astype(int), syllables - 1)
    glide = (position - index)[:, None] ** 3
    formants = (vowels[index] + (vowels[index + 1] - vowels[index]) * glide).T[None]
    harmonics = np.arange(1, int(_MAX_HARMONIC_HZ / f0.max()) + 1)[:, None, None]
    distance = (harmonics * f0[None, None] - formants) / (60.0 * (1 + formants / 2000))
    return (1.0 / (1.0 + distance**2)).sum(axis=1) / harmonics[:, :, 0]


def _voiced_burst(word: str, n: int, sample_rate: int) -> np.ndarray:
    """A syllabic voiced burst: a falling pitch through gliding vowels, a hiss between syllables."""
    seed = _word_seed(word)
    progress = np.arange(n) / max(n - 1, 1)
    pitch = 100 + seed % 80
    phase = 2 * np.pi * np.cumsum(pitch * (1.1 - 0.2 * progress)) / sample_rate
    # Gains change slowly: compute them every 5 ms and interpolate.
    coarse = np.linspace(0, 1, max(2, n * 200 // sample_rate))
    syllables = max(1, round(n / sample_rate * 1000 / _SYLLABLE_MS))
    gains = _formant_gains(seed, coarse, pitch * (1.1 - 0.2 * coarse), syllables)
    out = sum(
        np.interp(progress, coarse, gain) * np.sin(k * phase) for k, gain in enumerate(gains, 1)
    )
    out = out / max(np.abs(out).max(), 1e-9)
    syllable_edge = (0.5 + 0.5 * np.cos(2 * np.pi * progress * syllables)) ** 8
    hiss = np.diff(np.random.default_rng(seed).standard_normal(n + 1))
    out = out * (1 - 0.7 * syllable_edge ** (1 / 8)) + 0.2 * hiss * syllable_edge
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


def frame_levels(pcm: bytes, sample_rate: int = 8000) -> np.ndarray:
    """Loudness of each whole 20 ms frame, in dB of RMS over one LSB, floored at FLOOR_DB."""
    size = int(sample_rate * FRAME_S)
    usable = len(pcm) // (2 * size) * 2 * size
    x = np.frombuffer(pcm[:usable], dtype=np.int16).astype(np.float64).reshape(-1, size)
    return np.maximum(10 * np.log10((x**2).mean(axis=1) + 1.0), FLOOR_DB)


def is_speech(frame: bytes) -> bool:
    """Whether one frame of 16-bit PCM (any rate, e.g. 20 ms) is louder than SPEECH_DB."""
    x = np.frombuffer(frame[: len(frame) // 2 * 2], dtype=np.int16).astype(np.float64)
    return x.size > 0 and 10 * np.log10((x**2).mean() + 1.0) > SPEECH_DB


@dataclass(frozen=True)
class Recognition:
    """What the recognizer heard: words timed from the start of the audio it was given."""

    transcript: str
    words: list[WordTiming]
    score: float


def _spans(levels: np.ndarray, sentences: int) -> list[tuple[int, int]]:
    """Split a speech span (frames) into one span per sentence at its longest pauses."""
    quiet = np.concatenate(([False], levels <= SPEECH_DB, [False])).astype(int)
    starts, ends = np.flatnonzero(np.diff(quiet) == 1), np.flatnonzero(np.diff(quiet) == -1)
    longest = sorted(zip(starts, ends, strict=True), key=lambda p: p[0] - p[1])[: sentences - 1]
    edges = [0, *[i for pause in sorted(longest) for i in pause], len(levels)]
    return list(zip(edges[::2], edges[1::2], strict=True))


def _place_words(text: str, levels: np.ndarray) -> list[WordTiming]:
    """Time the words of text over a speech span: one sentence per phrase, by letters."""
    sentences: list[list[str]] = [[]]
    for token in text.split():
        sentences[-1].append(token)
        if _SENTENCE_END.search(token):
            sentences.append([])
    sentences = [s for s in sentences if s]
    spans = _spans(levels, len(sentences))
    if len(spans) < len(sentences):  # fewer pauses than sentences: share the last phrase
        sentences[len(spans) - 1 :] = [sum(sentences[len(spans) - 1 :], [])]
    words = []
    for tokens, (lo, hi) in zip(sentences, spans, strict=True):
        voiced = lo + np.flatnonzero(levels[lo:hi] > SPEECH_DB)
        voiced = voiced if voiced.size else np.arange(lo, hi)
        weights = np.cumsum([0] + [len(t) + 1 for t in tokens]) / (sum(len(t) + 1 for t in tokens))
        cuts = np.minimum((weights * voiced.size).astype(int), voiced.size - 1)
        for token, a, b in zip(tokens, cuts[:-1], cuts[1:], strict=True):
            end = voiced[max(b - 1, a)] + 1
            words.append(WordTiming(token, voiced[a] * FRAME_S, end * FRAME_S))
    return words


@dataclass(frozen=True)
class _Entry:
    transcript: str
    levels: np.ndarray  # the speech span only, leading and trailing silence trimmed
    words: list[WordTiming]  # seconds from the start of the speech span


def _speech_span(levels: np.ndarray) -> tuple[int, int]:
    voiced = np.flatnonzero(levels > SPEECH_DB)
    return (int(voiced[0]), int(voiced[-1]) + 1) if voiced.size else (0, 0)


def _align(query: np.ndarray, ref: np.ndarray) -> tuple[float, int]:
    """Best Pearson correlation of query against ref padded with silence, and its frame offset."""
    slack = _ALIGN_SLACK + max(0, query.size - ref.size)
    padded = np.concatenate([np.full(slack, FLOOR_DB), ref, np.full(slack, FLOOR_DB)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, query.size)
    w = windows - windows.mean(axis=1, keepdims=True)
    q = query - query.mean()
    denominator = np.sqrt((w**2).sum(axis=1) * (q**2).sum()) + 1e-9
    correlation = (w @ q) / denominator
    best = int(np.argmax(correlation))
    return float(correlation[best]), best - slack


class Recognizer:
    """Recognizes known recordings, or a stretch of one, from their 20 ms loudness envelopes.

    The speech part of the audio (silence trimmed at both ends) is slid along each recording's
    speech part; the score is the best Pearson correlation of the dB envelopes, with the
    recording padded with silence so that audio running past its ends scores lower. A score of
    MATCH_THRESHOLD (0.8) or more recognizes the words whose middle falls within the matched
    stretch, so the first second of a recording gives its first words (interim results); below
    it the transcript is UNRECOGNIZED. Less than MIN_MATCH_S of speech gives an empty transcript.
    Whole catalogue recordings score > 0.99 after a μ-law round trip; the catalogue's best score
    against segments of unrelated real speech (tests/data/silero_test_8k.wav) stays below 0.8.
    """

    def __init__(self, catalogue: Iterable[tuple[str, bytes]], sample_rate: int = 8000) -> None:
        """Build from (transcript, 16-bit mono PCM) pairs recorded at sample_rate."""
        self._entries = []
        for transcript, pcm in catalogue:
            levels = frame_levels(pcm, sample_rate)
            lo, hi = _speech_span(levels)
            if hi - lo == 0:
                raise ValueError(f"no speech in the recording of {transcript!r}")
            self._entries.append(
                _Entry(transcript, levels[lo:hi], _place_words(transcript, levels[lo:hi]))
            )

    @classmethod
    def from_transcripts(cls, path: str | Path) -> "Recognizer":
        """Load `name|text` lines; each name's recording is `<name>.wav` beside the file."""
        path = Path(path)
        pairs = []
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, text = line.split("|", 1)
                pairs.append((text.strip(), read_wav(path.parent / f"{name.strip()}.wav")))
        return cls(pairs)

    @property
    def transcripts(self) -> list[str]:
        """The transcripts this recognizer knows."""
        return [e.transcript for e in self._entries]

    def recognize(self, pcm: bytes, sample_rate: int = 8000) -> Recognition:
        """Recognize 16-bit mono PCM; word times are seconds from the start of pcm."""
        levels = frame_levels(pcm, sample_rate)
        lo, hi = _speech_span(levels)
        query = levels[lo:hi]
        if (query > SPEECH_DB).sum() * FRAME_S < MIN_MATCH_S:
            return Recognition("", [], 0.0)
        scores = [(*_align(query, e.levels), e) for e in self._entries]
        score, offset, entry = max(scores, key=lambda s: s[0])
        if score < MATCH_THRESHOLD:
            return Recognition(UNRECOGNIZED, _shift(_place_words(UNRECOGNIZED, query), lo), score)
        first, last = offset * FRAME_S, (offset + query.size) * FRAME_S
        heard = [w for w in entry.words if first <= (w.start_s + w.end_s) / 2 < last]
        words = _shift(heard, lo - offset)
        return Recognition(" ".join(w.word for w in words), words, score)


def _shift(words: list[WordTiming], frames: int) -> list[WordTiming]:
    delta = frames * FRAME_S
    return [
        WordTiming(w.word, round(w.start_s + delta, 3), round(w.end_s + delta, 3)) for w in words
    ]
