"""Silero VAD with its ONNX model loaded once per process instead of once per call."""

import copy
from functools import cache
from importlib import resources

import numpy as np
from loguru import logger
from pipecat.audio.vad.silero import SileroOnnxModel
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

SAMPLE_RATES = (8000, 16000)  # the rates the model was trained for

# Non-speech (music, long silence at 8 kHz) drifts the model's recurrent state until it
# under-reports the speech that follows; pipecat's `SileroVADAnalyzer` resets it every 2 s of
# audio at the first clear non-speech. Its values (private constants in pipecat 1.14):
RESET_INTERVAL_SECS = 2.0
RESET_MAX_CONFIDENCE = 0.1  # a window this unlike speech counts as clear non-speech...
RESET_LOW_WINDOWS = 5  # ...once this many come in a row (~160 ms)


@cache
def shared_model() -> SileroOnnxModel:
    """The process's Silero ONNX session (loaded on first use; call early to pre-load)."""
    # The model pipecat bundles; loading it costs ~50 ms, running it keeps no shared state.
    path = resources.files("pipecat.audio.vad.data").joinpath("silero_vad.onnx")
    return SileroOnnxModel(str(path), force_onnx_cpu=True)


class SharedSileroVADAnalyzer(VADAnalyzer):
    """Silero VAD on the process's one ONNX session; each call keeps its own model state.

    It scores and decides exactly as pipecat's `SileroVADAnalyzer` (same confidences, same
    state resets, same start and stop), and analyzes on the event loop: pipecat hands every
    20 ms frame to a thread, and the hop costs more than the model (~0.1 ms per 32 ms
    window, and most frames run no model at all).
    """

    def __init__(self, *, sample_rate: int | None = None, params: VADParams | None = None):
        """Like `SileroVADAnalyzer`, without loading the model again."""
        super().__init__(sample_rate=sample_rate, params=params)
        self._silero = copy.copy(shared_model())  # shares the session, not the recurrent state
        self._silero.reset_states()
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

    def set_params(self, params: VADParams):
        """Set the parameters; the VAD starts over, quiet (as pipecat's does)."""
        super().set_params(params)
        self._state_before_buffer = VADState.QUIET

    def num_frames_required(self) -> int:
        """Samples per model window: 512 at 16 kHz, 256 at 8 kHz."""
        return 512 if self.sample_rate == 16000 else 256

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
        self._windows_in_buffer += 1
        try:
            samples = np.frombuffer(buffer, np.int16).astype(np.float32) / 32768.0
            # A float32 scalar, as pipecat's: compared with the threshold in float32.
            confidence = self._silero(samples, self.sample_rate)[0, 0]
            self._maybe_reset_silero(confidence.item())
            self._count_run(confidence >= self.params.confidence)
            return confidence
        except Exception as e:  # as pipecat: a window it cannot score is not speech
            logger.error(f"Error analyzing audio with Silero VAD: {e}")
            return 0

    async def analyze_audio(self, buffer: bytes) -> VADState:
        """Analyze at once, on the event loop."""
        self._windows_in_buffer = 0
        # pipecat's state machine, synchronously: its public `analyze_audio` always runs it on
        # a thread. The one private name used here (upstream: a public synchronous step).
        state = self._run_analyzer(buffer)
        self._state_before_buffer = state
        return state

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
            self._silero.reset_states()
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
