"""Deterministic fake speech: a synthetic TTS voice and a recognizer for a catalogue of recordings.

`synthesize()` turns text into voiced bursts (one per word) that a VAD hears as speech.
`Recognizer` names which known recording a stretch of audio is, by the shape of its spectrum
over time, so the STT stand-in can return real transcripts without a speech model.
"""

import hashlib
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from loguru import logger

from recordings import RECORDINGS
from standins.audio import read_wav

DATA = RECORDINGS
FRAME_S = 0.02
SPEECH_DB = 35.0  # a 20 ms frame louder than this (RMS ~56 of 32767) counts as speech
MATCH_THRESHOLD = 0.90  # a lower score (correlation of band envelopes) is unrecognized speech
MIN_MATCH_S = 0.4  # less speech than this is too little to recognize: empty transcript
UNRECOGNIZED = "(unrecognized speech)"
# A short vocalization that matches nothing ("mm-hm") comes out as one filler word, as a real
# recognizer transcribes a backchannel; longer unknown speech gets the placeholder above.
FILLER, FILLER_MAX_S = "Mm-hmm.", 0.8

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
# Recognizer analysis: 20 ms windows every _HOP_S, band levels floored so that line noise and
# μ-law's zero look alike; matching may start within _SLACK windows of a phrase start.
_HOP_S = 0.005
_BAND_EDGES_HZ = (100, 300, 500, 750, 1000, 1500, 2000, 2800, 3800)
_BANDS_HZ = tuple(itertools.pairwise(_BAND_EDGES_HZ))
_FLOOR_DB = 20.0
_PHRASE_PAUSE = 16  # windows (80 ms quiet ≈ 100 ms of silence, as windows overlap speech)
_SLACK = 6
_LONGER = 200  # windows (1 s): speech this much longer than every recording is unrecognized
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
    between = 0.5 + 0.5 * np.cos(2 * np.pi * progress * syllables)  # 1 between syllables
    hiss = np.diff(np.random.default_rng(seed).standard_normal(n + 1))  # seeded: deterministic
    out = out * (1 - 0.7 * between) + 0.2 * hiss * between**8
    # A Tukey (Hann-tapered) envelope: 30 ms sin² ramps at both ends.
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


def is_speech(frame: bytes) -> bool:
    """Whether one frame of 16-bit PCM (e.g. 20 ms, any rate) is louder than SPEECH_DB."""
    x = np.frombuffer(frame[: len(frame) // 2 * 2], dtype=np.int16).astype(np.float64)
    return x.size > 0 and 10 * np.log10((x**2).mean() + 1.0) > SPEECH_DB


@dataclass(frozen=True)
class Recognition:
    """What the recognizer heard: words timed in seconds from the start of the audio given."""

    transcript: str
    words: list[WordTiming]
    score: float


def _windows(pcm: bytes, sample_rate: int) -> np.ndarray:
    """20 ms windows every 5 ms (windows × samples)."""
    x = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype=np.int16).astype(np.float64)
    size, hop = int(sample_rate * FRAME_S), int(sample_rate * _HOP_S)
    if x.size < size:
        return np.zeros((0, size))
    return np.lib.stride_tricks.sliding_window_view(x, size)[::hop]


def _level(windows: np.ndarray) -> np.ndarray:
    """Loudness of each window in dB (RMS over one LSB)."""
    return 10 * np.log10((windows**2).mean(axis=1) + 1.0)


def _bands(windows: np.ndarray, sample_rate: int) -> np.ndarray:
    """Levels (dB) of each window's telephone bands (windows × bands), floored."""
    size = windows.shape[1]
    power = np.abs(np.fft.rfft(windows * np.hanning(size), axis=1)) ** 2
    freqs = np.fft.rfftfreq(size, 1 / sample_rate)
    bands = np.stack([power[:, (freqs >= lo) & (freqs < hi)].sum(1) for lo, hi in _BANDS_HZ], 1)
    return np.maximum(10 * np.log10(bands / size + 1.0), _FLOOR_DB)


def _speech_span(level: np.ndarray) -> tuple[int, int]:
    voiced = np.flatnonzero(level > SPEECH_DB)
    return (int(voiced[0]), int(voiced[-1]) + 1) if voiced.size else (0, 0)


def _pauses(level: np.ndarray) -> list[tuple[int, int]]:
    """Quiet runs inside a speech span, as (first, end) window indices."""
    quiet = np.diff(np.concatenate(([0], (level <= SPEECH_DB).astype(int), [0])))
    return list(zip(np.flatnonzero(quiet == 1), np.flatnonzero(quiet == -1), strict=True))


def _sentences(text: str) -> list[list[str]]:
    sentences: list[list[str]] = [[]]
    for token in text.split():
        sentences[-1].append(token)
        if _SENTENCE_END.search(token):
            sentences.append([])
    return [s for s in sentences if s]


def _place_words(text: str, level: np.ndarray) -> list[WordTiming]:
    """Time words over a speech span: sentences split at the longest pauses, words by letters."""
    sentences = _sentences(text)
    longest = sorted(_pauses(level), key=lambda p: p[0] - p[1])[: len(sentences) - 1]
    edges = [0, *[int(i) for pause in sorted(longest) for i in pause], len(level)]
    spans = list(zip(edges[::2], edges[1::2], strict=True))
    sentences[len(spans) - 1 :] = [sum(sentences[len(spans) - 1 :], [])]  # too few pauses
    words = []
    for tokens, (lo, hi) in zip(sentences, spans, strict=True):
        voiced = lo + np.flatnonzero(level[lo:hi] > SPEECH_DB)
        letters = np.cumsum([0] + [len(t) + 1 for t in tokens])
        cuts = np.minimum(letters * voiced.size // letters[-1], voiced.size - 1)
        for token, a, b in zip(tokens, cuts[:-1], cuts[1:], strict=True):
            end = voiced[max(b - 1, a)] + 1
            words.append(WordTiming(token, float(voiced[a] * _HOP_S), float(end * _HOP_S)))
    return words


@dataclass(frozen=True)
class _Entry:
    transcript: str
    bands: np.ndarray  # of the speech span only: silence trimmed at both ends
    starts: list[int]  # windows where a phrase starts: the first, and after each long pause
    words: list[WordTiming]  # seconds from the start of the speech span


def _entry(transcript: str, pcm: bytes, sample_rate: int) -> _Entry:
    windows = _windows(pcm, sample_rate)
    level = _level(windows)
    lo, hi = _speech_span(level)
    if hi == lo or not transcript.split():
        raise ValueError(f"need a transcript and speech in its recording: {transcript!r}")
    level, bands = level[lo:hi], _bands(windows[lo:hi], sample_rate)
    pauses = [int(end) for start, end in _pauses(level) if end - start >= _PHRASE_PAUSE]
    return _Entry(transcript, bands, [0, *pauses], _place_words(transcript, level))


def _align(query: np.ndarray, entry: _Entry) -> tuple[float, int]:
    """Best correlation of the query's band envelope with the entry's, near a phrase start."""
    n, bands = query.shape
    floor = np.full((n + _SLACK, bands), _FLOOR_DB)
    ref = np.concatenate([floor, entry.bands, floor])
    q = query - query.mean(axis=0)  # centred, so the windows need not be
    best = (-1.0, 0)
    for start in entry.starts:
        near = ref[n + start : 2 * n + start + 2 * _SLACK]  # windows start - _SLACK ... + _SLACK
        covariance = sum(np.correlate(near[:, b], q[:, b], "valid") for b in range(bands))
        sums = np.cumsum(np.vstack([np.zeros((1, bands)), near]), axis=0)
        squares = np.cumsum(np.concatenate([[0.0], (near**2).sum(axis=1)]))
        spread = squares[n:] - squares[:-n] - ((sums[n:] - sums[:-n]) ** 2).sum(axis=1) / n
        correlation = covariance / (np.sqrt(spread * (q**2).sum()) + 1e-9)
        i = int(np.argmax(correlation))
        if correlation[i] > best[0]:
            best = (float(correlation[i]), start - _SLACK + i)
    return best


class Recognizer:
    """Recognizes known recordings, or the start of one, by the shape of their spectrum over time.

    Audio is cut to its speech (silence trimmed at both ends) and described by the levels of 8
    telephone bands in 20 ms windows every 5 ms. That envelope is correlated with each recording's
    where a phrase starts (the first word, or after a pause of 100 ms or more, so a segment
    endpointed at a pause still matches); audio running past a recording's end meets silence and
    scores lower. A score (Pearson correlation) of MATCH_THRESHOLD (0.90) or more recognizes the
    words whose middle falls in the matched stretch, so a prefix gives the first words (interim
    results). Below it, or with speech over 1 s longer than every recording, the transcript is
    UNRECOGNIZED; less than MIN_MATCH_S (0.4 s) of speech gives an empty one.

    Measured on recordings/: catalogue recordings, whole or cut short, score >= 0.97 after a μ-law
    round trip, with silence added at either end, or resampled to 16 kHz; through a browser's
    microphone (Chromium resampling it twice) as low as 0.918 (it was 0.92 then: the console's
    barge-in test failed now and then); stretches of unrelated real speech
    (silero_test_8k.wav) of 0.45 s or more score <= 0.86.
    """

    def __init__(self, catalogue: Iterable[tuple[str, bytes]], sample_rate: int = 8000) -> None:
        """Build from (transcript, 16-bit mono PCM) pairs recorded at sample_rate."""
        self._entries = [_entry(text, pcm, sample_rate) for text, pcm in catalogue]
        self._longest = max((e.bands.shape[0] for e in self._entries), default=0) + _LONGER

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
        """The transcripts this recognizer knows, in catalogue order."""
        return [e.transcript for e in self._entries]

    def recognize(self, pcm: bytes, sample_rate: int = 8000) -> Recognition:
        """Recognize 16-bit mono PCM; word times are seconds from the start of pcm."""
        windows = _windows(pcm, sample_rate)
        level = _level(windows)
        lo, hi = _speech_span(level)
        if (hi - lo) * _HOP_S < MIN_MATCH_S or not self._entries:
            return Recognition("", [], 0.0)
        score, offset, entry = 0.0, 0, self._entries[0]
        if hi - lo <= self._longest:  # longer speech matches nothing, and would be slow to try
            query = _bands(windows[lo:hi], sample_rate)
            matches = ((*_align(query, e), e) for e in self._entries)
            score, offset, entry = max(matches, key=lambda match: match[0])
        if score < MATCH_THRESHOLD:
            text = FILLER if (hi - lo) * _HOP_S <= FILLER_MAX_S else UNRECOGNIZED
            logger.debug(
                f"recognizer: {(hi - lo) * _HOP_S:.2f} s of speech heard as {text!r}: closest"
                f" {entry.transcript[:40]!r} (score {score:.3f} < {MATCH_THRESHOLD})"
            )
            words = _shift(_place_words(text, level[lo:hi]), lo * _HOP_S)
            return Recognition(text, words, score)
        first, last = offset * _HOP_S, (offset + hi - lo) * _HOP_S
        heard = [w for w in entry.words if first <= (w.start_s + w.end_s) / 2 < last]
        words = _shift(heard, (lo - offset) * _HOP_S)
        return Recognition(" ".join(w.word for w in words), words, score)


def _shift(words: list[WordTiming], seconds: float) -> list[WordTiming]:
    """Move word times by seconds, none before 0, rounded to the millisecond."""
    return [
        WordTiming(w.word, round(max(w.start_s + seconds, 0.0), 3), round(w.end_s + seconds, 3))
        for w in words
    ]


@cache
def recognizer_for(language: str) -> Recognizer:
    """A recognizer of the recordings in `language` ("en", "es", "es-419": Spanish, …).

    English recordings are `recordings//transcripts.txt`, others `recordings//<lang>/`; a
    language with none recognizes nothing, as a model would not understand the words.
    """
    base = language.split("-")[0].lower()
    path = DATA / ("transcripts.txt" if base == "en" else f"{base}/transcripts.txt")
    return Recognizer.from_transcripts(path) if path.exists() else Recognizer([])
