"""Silero VAD with its ONNX model loaded once per process, its windows scored in batches."""

import asyncio
import math
from collections import deque

import numpy as np
from loguru import logger
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

from models.silero_batcher import (
    WINDOW_SAMPLES,
    SileroBatcher,
    SileroStream,
    shared_batcher,
    shared_model,
)

__all__ = ["SAMPLE_RATES", "SharedSileroVADAnalyzer", "shared_model"]

SAMPLE_RATES = tuple(WINDOW_SAMPLES)  # the rates the model was trained for

# Non-speech (music, long silence at 8 kHz) drifts the model's recurrent state until it
# under-reports the speech that follows; pipecat's `SileroVADAnalyzer` resets it every 2 s of
# audio at the first clear non-speech. Its values (private constants in pipecat 1.14):
RESET_INTERVAL_SECS = 2.0
RESET_MAX_CONFIDENCE = 0.1  # a window this unlike speech counts as clear non-speech...
RESET_LOW_WINDOWS = 5  # ...once this many come in a row (~160 ms)

# pipecat's VAD hears speech only where the audio's loudness over the last 0.4 s (BS.1770,
# its `min_volume` scale: 0..1 for -110..-10 LUFS) reaches `min_volume`. Audio this far under
# it, as plain RMS over the same 0.4 s, cannot be speech to it whatever the model says.
QUIET_WINDOW_SECS = 0.4
QUIET_MARGIN_DB = 10.0


class SharedSileroVADAnalyzer(VADAnalyzer):
    """Silero VAD on the process's one ONNX session; each call keeps its own model state.

    The windows it scores, it scores and decides exactly as pipecat's `SileroVADAnalyzer`
    (same confidences, same state resets, same start and stop; a quiet line's windows are
    not scored: `skip_quiet` below), on the event loop: pipecat hands every 20 ms frame to a
    thread, and the hop costs more than the model.

    `batched` (the default), a buffer's whole windows go to the loop's `SileroBatcher`
    (or `batcher`), which scores the windows of every call waiting in one `Session.run`;
    pipecat's state machine then runs on the confidences it returned. A buffer whose
    `analyze_audio` is cancelled while it waits leaves the analyzer as if it never came.
    Not batched, each window is scored alone, at once (no await).

    `skip_quiet` (the default): a window whose last `QUIET_WINDOW_SECS` of audio is
    `QUIET_MARGIN_DB` under `min_volume` (-60 dBFS for 0.6: a phone line's noise while the
    caller listens) is not scored: it is taken as the model's clear non-speech (confidence
    0, pipecat's reset rule applied), and the model's state is not moved through it. Speech
    after a quiet stretch starts where pipecat's VAD starts it; its stops may move by a
    window or two (`tests/test_silero_vad.py`).
    """

    def __init__(
        self,
        *,
        sample_rate: int | None = None,
        params: VADParams | None = None,
        batched: bool = True,
        batcher: SileroBatcher | None = None,
        skip_quiet: bool = True,
    ):
        """Like `SileroVADAnalyzer`, without loading the model again."""
        super().__init__(sample_rate=sample_rate, params=params)
        self._batched = batched
        self._skip_quiet = skip_quiet
        self._energies: deque[float] = deque()  # mean squares of the latest windows
        self._skipped = 0  # windows not scored: too quiet to be speech
        self._batcher = batcher  # None: the running loop's, on first use
        self._attached = False
        self._model = shared_model()  # scores a window alone (not batched)
        self._stream: SileroStream | None = None  # made with the rate
        self._unscored = b""  # the part window pipecat's buffer keeps, mirrored
        self._confidences: deque[np.float32 | int] = deque()  # scored ahead by the batch
        self._analyzing = False
        self._windows_since_silero_reset = 0
        self._low_windows = 0  # the latest windows in a row under RESET_MAX_CONFIDENCE
        self._state_before_buffer = VADState.QUIET
        self._windows_in_buffer = 0
        self._quiet_windows = 0  # the latest windows in a row under the confidence threshold
        self._voiced_windows = 0  # the latest windows in a row at or over it

    def set_sample_rate(self, sample_rate: int):
        """Set the rate (the constructor's, if it was given one): 8 or 16 kHz.

        Raises:
            ValueError: Silero runs at neither.
        """
        super().set_sample_rate(sample_rate)
        if self.sample_rate not in SAMPLE_RATES:
            raise ValueError(f"Silero VAD needs 8000 or 16000 Hz, not {self.sample_rate}")
        self._stream = SileroStream(self.sample_rate)
        self._attached = False  # the batcher counts the new stream at its first window
        window_secs = self.num_frames_required() / self.sample_rate
        self._energies = deque(maxlen=math.ceil(QUIET_WINDOW_SECS / window_secs))

    def set_params(self, params: VADParams):
        """Set the parameters; the VAD starts over, quiet (as pipecat's does)."""
        super().set_params(params)
        self._state_before_buffer = VADState.QUIET

    def num_frames_required(self) -> int:
        """Samples per model window: 512 at 16 kHz, 256 at 8 kHz."""
        return 512 if self.sample_rate == 16000 else 256  # any rate: checked after pipecat's set

    @property
    def skipped_windows(self) -> int:
        """Windows not scored so far, too quiet to be speech (`skip_quiet`)."""
        return self._skipped

    @property
    def quiet_secs(self) -> float:
        """How long the latest windows have been unlike speech: a pause, before the VAD's stop."""
        return self._quiet_windows * self.num_frames_required() / self.sample_rate

    @property
    def voiced_secs(self) -> float:
        """How long the latest windows have been speech (whether or not the VAD has started)."""
        return self._voiced_windows * self.num_frames_required() / self.sample_rate

    def voice_confidence(self, buffer: bytes) -> float:
        """The model's speech probability for one window, 0 if it cannot score it."""
        if self._confidences:  # batched: `analyze_audio` scored this buffer's windows ahead
            return self._confidences.popleft()
        self._windows_in_buffer += 1
        samples = self._samples(buffer)
        if self._too_quiet(samples):
            return self._unscored_quiet()
        try:
            row = self._stream.row(samples)
            confidences, state = self._model.run(row[None], self._stream.state, self.sample_rate)
            return self._scored(row, confidences[0], state)
        except Exception as e:  # as pipecat: a window it cannot score is not speech
            logger.error(f"Error analyzing audio with Silero VAD: {e}")
            return 0

    async def analyze_audio(self, buffer: bytes) -> VADState:
        """Analyze on the event loop: the windows batched with other calls', then decided."""
        self._windows_in_buffer = 0
        if self._batched:
            if self._analyzing:
                raise RuntimeError("analyze_audio is already running: one stream, in order")
            self._analyzing = True
            try:
                await self._score_ahead(buffer)
            finally:
                self._analyzing = False
        # pipecat's state machine, synchronously: its public `analyze_audio` always runs it on
        # a thread. The one private name used here (upstream: a public synchronous step).
        state = self._run_analyzer(buffer)
        if self._confidences:
            self._confidences.clear()
            raise RuntimeError("pipecat's VAD took fewer windows than were scored for it")
        self._state_before_buffer = state
        return state

    async def _score_ahead(self, buffer: bytes) -> None:
        """Score the whole windows `_run_analyzer` will take, in order, through the batcher."""
        pending = self._unscored + buffer
        whole = len(pending) - len(pending) % (self.num_frames_required() * 2)
        if not whole:
            self._unscored = pending
            return
        batcher = self._batcher = self._batcher or shared_batcher()
        if not self._attached:
            batcher.attach(self._stream)
            self._attached = True
        before = self._checkpoint()
        confidences = []
        try:
            for start in range(0, whole, self.num_frames_required() * 2):
                self._windows_in_buffer += 1
                window = pending[start : start + self.num_frames_required() * 2]
                samples = self._samples(window)
                if self._too_quiet(samples):
                    confidences.append(self._unscored_quiet())
                    continue
                row = self._stream.row(samples)
                future = batcher.submit(row, self._stream.state, self.sample_rate)
                try:
                    scored = await future
                except asyncio.CancelledError:
                    batcher.discard(future)
                    raise
                # A failed run: not speech, the model's state and the counts left alone.
                confidences.append(0 if scored is None else self._scored(row, *scored))
        except asyncio.CancelledError:
            self._restore(before)
            raise
        self._unscored = pending[whole:]
        self._confidences.extend(confidences)

    def _checkpoint(self) -> tuple:
        stream = self._stream
        counts = (self._windows_since_silero_reset, self._low_windows, self._skipped)
        runs = (self._quiet_windows, self._voiced_windows)
        return stream.state, stream.context, counts, runs, list(self._energies)

    def _restore(self, checkpoint: tuple) -> None:
        self._stream.state, self._stream.context, counts, runs, energies = checkpoint
        self._windows_since_silero_reset, self._low_windows, self._skipped = counts
        self._quiet_windows, self._voiced_windows = runs
        self._energies.clear()
        self._energies.extend(energies)

    def _too_quiet(self, samples: np.ndarray) -> bool:
        """Take a window's level; whether the last 0.4 s is too quiet to be speech."""
        self._energies.append(float(np.dot(samples, samples)) / len(samples))
        if not self._skip_quiet or len(self._energies) != self._energies.maxlen:
            return False
        lufs = self.params.min_volume * 100 - 110  # pipecat's normalized scale
        floor = 10 ** ((lufs - QUIET_MARGIN_DB) / 10)
        return sum(self._energies) / len(self._energies) < floor

    def _unscored_quiet(self) -> np.float32:
        """A window too quiet to score: taken as the model's clear non-speech, confidence 0.

        The model's state stays as the last scored window left it (or reset, when pipecat's
        rule says so).
        """
        self._skipped += 1
        self._maybe_reset_silero(0.0)
        self._count_run(False)
        return np.float32(0)

    @staticmethod
    def _samples(window: bytes) -> np.ndarray:
        return np.frombuffer(window, np.int16).astype(np.float32) / 32768.0

    def _scored(self, row: np.ndarray, confidence: np.float32, state: np.ndarray) -> np.float32:
        """Take a window's score: the model's state moves on, maybe resets; the runs count.

        The confidence is a float32 scalar, as pipecat's: compared with the threshold in
        float32.
        """
        self._stream.advance(row, state)
        self._maybe_reset_silero(confidence.item())
        self._count_run(confidence >= self.params.confidence)
        return confidence

    def _count_run(self, speech: bool) -> None:
        self._quiet_windows = 0 if speech else self._quiet_windows + 1
        self._voiced_windows = self._voiced_windows + 1 if speech else 0

    def _maybe_reset_silero(self, confidence: float) -> None:
        """Reset the model's state if one is due and the caller is clearly not speaking."""
        self._windows_since_silero_reset += 1
        self._low_windows = self._low_windows + 1 if confidence < RESET_MAX_CONFIDENCE else 0
        due = (
            self._windows_since_silero_reset * self.num_frames_required()
            >= RESET_INTERVAL_SECS * self.sample_rate
        )
        if due and self._low_windows >= RESET_LOW_WINDOWS and self._quiet():
            self._stream.reset()
            self._windows_since_silero_reset = 0

    def _quiet(self) -> bool:
        """Whether pipecat's VAD state is QUIET before this window (pipecat keeps it private).

        It was what `analyze_audio` last returned. Within a buffer of several windows a
        STARTING state falls to QUIET at the first window that is not speech, as the low
        ones before this one were (for any confidence threshold above RESET_MAX_CONFIDENCE).
        """
        before = self._state_before_buffer
        return before == VADState.QUIET or (
            before == VADState.STARTING and self._windows_in_buffer > 1
        )
