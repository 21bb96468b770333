"""Silero VAD with its ONNX model loaded once per process instead of once per call."""

import copy
from functools import cache
from importlib import resources

from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState


@cache
def shared_model() -> SileroOnnxModel:
    """The process's Silero ONNX session (loaded on first use; call early to pre-load)."""
    # The model pipecat bundles; loading it costs ~50 ms, running it keeps no shared state.
    path = resources.files("pipecat.audio.vad.data").joinpath("silero_vad.onnx")
    return SileroOnnxModel(str(path), force_onnx_cpu=True)


class SharedSileroVADAnalyzer(SileroVADAnalyzer):
    """`SileroVADAnalyzer` sharing one ONNX session; each call keeps its own model state.

    It also analyzes on the event loop: pipecat hands every 20 ms frame to a thread, and the
    hop costs more than the model (~0.1 ms per 32 ms window, most frames run no model at all).
    """

    def __init__(self, *, sample_rate: int | None = None, params: VADParams | None = None):
        """Like `SileroVADAnalyzer`, without loading the model again."""
        VADAnalyzer.__init__(self, sample_rate=sample_rate, params=params)
        self._model = copy.copy(shared_model())  # shares the session, not the recurrent state
        self._model.reset_states()
        self._windows_since_reset = 0
        self._low_confidence_windows = 0

    async def analyze_audio(self, buffer: bytes) -> VADState:
        """Analyze at once, on the event loop."""
        return self._run_analyzer(buffer)
