"""Smart Turn v3 with its ONNX session loaded once per process instead of once per call."""

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib import resources

import numpy as np
import onnxruntime as ort
import soxr
from loguru import logger
from pipecat.audio.turn.base_turn_analyzer import BaseTurnAnalyzer, EndOfTurnState

# pipecat's numpy Whisper features, which its own Smart Turn v3 uses. The only private
# name here: pipecat 1.14 exports it under no public name.
from pipecat.audio.turn.smart_turn._whisper_features import compute_whisper_log_mel_features
from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
from pipecat.metrics.metrics import MetricsData, TurnMetricsData

MODEL = "smart-turn-v3.2-cpu.onnx"  # the model pipecat bundles and loads by default
MODEL_RATE = 16000  # the model hears 16 kHz...
MODEL_SECS = 8  # ...and the last 8 s of the turn, padded with silence in front

Chunk = tuple[float, np.ndarray]  # when it was appended (time.monotonic()), its int16 samples


@cache
def shared_session() -> ort.InferenceSession:
    """The process's Smart Turn v3 session (loaded on first use; call early to pre-load).

    Built with the options `LocalSmartTurnAnalyzerV3` uses (one intra-op thread). A session
    keeps no state between runs and `run()` is thread-safe, so every call can share it.
    """
    path = resources.files("pipecat.audio.turn.smart_turn.data").joinpath(MODEL)
    options = ort.SessionOptions()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=options)


@cache
def shared_executor() -> ThreadPoolExecutor:
    """The threads all calls' inferences run on: one per CPU the process may use.

    More would not finish sooner, and every inference running at once keeps ~16 MB of
    onnxruntime and malloc arena for good (10 at once: +180 MB; on 2 threads: +55 MB).
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return ThreadPoolExecutor(max_workers=cpus or 1, thread_name_prefix="smart-turn")


def completion_probability(
    session: ort.InferenceSession, audio: np.ndarray, sample_rate: int
) -> float:
    """The model's probability that a turn's float32 audio is a finished turn.

    Computed as `LocalSmartTurnAnalyzerV3` computes it: at 16 kHz, on the last 8 s.
    """
    if sample_rate != MODEL_RATE:
        audio = soxr.resample(audio, sample_rate, MODEL_RATE, quality="HQ")
    audio = audio[-MODEL_SECS * MODEL_RATE :]
    audio = np.pad(audio, (MODEL_SECS * MODEL_RATE - len(audio), 0))
    features = compute_whisper_log_mel_features(audio, do_normalize=True)
    outputs = session.run(None, {"input_features": features[np.newaxis]})
    return np.asarray(outputs[0])[0].item()


class SharedSmartTurnAnalyzerV3(BaseTurnAnalyzer):
    """Smart Turn v3 on the process's one session and threads; each call keeps its own audio.

    It keeps a turn's audio and judges it as pipecat's `LocalSmartTurnAnalyzerV3` (through
    its `BaseSmartTurn`) does, to the bit: the audio from `pre_speech_ms` (plus the VAD's
    start delay) before the first speech, at most `max_duration_secs` of it; `stop_secs` of
    silence ends the turn without the model. pipecat's loads a session (~44 MB, ~70 ms) and
    starts a thread per call.
    """

    def __init__(self, *, sample_rate: int | None = None, params: SmartTurnParams | None = None):
        """Judge turns at `sample_rate` (else the pipeline's), with pipecat's Smart Turn params."""
        super().__init__(sample_rate=sample_rate)
        self._onnx_session = shared_session()  # loaded here, on the event loop, if not yet
        self._smart_turn_params = params or SmartTurnParams()
        self._chunks: list[Chunk] = []
        self._triggered = False  # speech came since the last turn ended
        self._speech_began = 0.0  # time.monotonic() of the turn's first speech, 0 before it
        self._silent_ms = 0.0  # since the last speech
        self._vad_start_secs = 0.0  # the VAD's start delay: that much more audio before it

    @property
    def speech_triggered(self) -> bool:
        """Whether speech came since the last turn ended."""
        return self._triggered

    @property
    def params(self) -> SmartTurnParams:
        """The Smart Turn parameters."""
        return self._smart_turn_params

    def append_audio(self, buffer: bytes, is_speech: bool) -> EndOfTurnState:
        """Keep a packet of the turn; COMPLETE once `stop_secs` of silence followed speech."""
        samples = np.frombuffer(buffer, dtype=np.int16)  # int16 until a turn is judged
        self._chunks.append((time.monotonic(), samples))
        if is_speech:
            self._silent_ms = 0.0
            self._triggered = True
            self._speech_began = self._speech_began or time.monotonic()
        elif not self._triggered:
            self._drop_audio_too_old_to_judge()
        else:
            self._silent_ms += len(samples) / (self.sample_rate / 1000)
            if self._silent_ms >= self.params.stop_secs * 1000:
                logger.debug(f"End of Turn complete due to stop_secs ({self._silent_ms} ms)")
                self.clear()
                return EndOfTurnState.COMPLETE
        return EndOfTurnState.INCOMPLETE

    async def analyze_end_of_turn(self) -> tuple[EndOfTurnState, MetricsData | None]:
        """Ask the model, on the process's threads, whether the turn so far is finished."""
        loop = asyncio.get_running_loop()
        # The list itself, as pipecat does: packets appended meanwhile are judged next time,
        # or dropped with the rest if this verdict ends the turn.
        state, metrics = await loop.run_in_executor(shared_executor(), self._judge, self._chunks)
        if state == EndOfTurnState.COMPLETE:
            self.clear()
        logger.debug(f"End of Turn result: {state}")
        return state, metrics

    def update_vad_start_secs(self, vad_start_secs: float):
        """Keep that much more audio before the VAD's start (the speech it took to start)."""
        self._vad_start_secs = vad_start_secs

    def clear(self):
        """Forget the turn."""
        self._chunks = []
        self._triggered = False
        self._speech_began = 0.0
        self._silent_ms = 0.0

    def _drop_audio_too_old_to_judge(self) -> None:
        params = self.params
        keep_secs = params.pre_speech_ms / 1000 + params.stop_secs + params.max_duration_secs
        while self._chunks and self._chunks[0][0] < time.monotonic() - keep_secs:
            self._chunks.pop(0)

    def _judge(self, chunks: list[Chunk]) -> tuple[EndOfTurnState, MetricsData | None]:
        """The model's verdict on the turn's audio (on an inference thread)."""
        audio = self._turn_audio(chunks) if chunks else np.zeros(0, np.float32)
        if not len(audio):
            return EndOfTurnState.INCOMPLETE, None
        started = time.perf_counter()
        probability = completion_probability(
            self._onnx_session, audio, self.sample_rate or MODEL_RATE
        )
        complete = probability > 0.5
        metrics = TurnMetricsData(
            processor="BaseSmartTurn",  # what pipecat's analyzers report
            is_complete=complete,
            probability=probability,
            e2e_processing_time_ms=(time.perf_counter() - started) * 1000,
        )
        return EndOfTurnState.COMPLETE if complete else EndOfTurnState.INCOMPLETE, metrics

    def _turn_audio(self, chunks: list[Chunk]) -> np.ndarray:
        """The turn's float32 audio, from just before its first speech, at most the maximum."""
        # pipecat's arithmetic, so that a packet on the edge falls on the same side.
        lead_ms = self.params.pre_speech_ms + (self._vad_start_secs * 1000)
        start = self._speech_began - (lead_ms / 1000)
        first = next((i for i, (appended, _) in enumerate(chunks) if appended >= start), 0)
        audio = np.concatenate([samples for _, samples in chunks[first:]])
        audio = audio.astype(np.float32) / 32768.0
        most = int(self.params.max_duration_secs * self.sample_rate)
        return audio[-most:] if len(audio) > most else audio
