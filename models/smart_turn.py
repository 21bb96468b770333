"""Smart Turn v3 with its ONNX session loaded once per process instead of once per call."""

import os
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib import resources

import onnxruntime as ort
from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn, SmartTurnParams
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

MODEL = "smart-turn-v3.2-cpu.onnx"  # the model pipecat bundles and loads by default


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


class SharedSmartTurnAnalyzerV3(LocalSmartTurnAnalyzerV3):
    """`LocalSmartTurnAnalyzerV3` sharing one ONNX session; each call keeps its own audio.

    The per-call state (the turn's audio buffer, its silence count) is `BaseSmartTurn`'s, as
    in pipecat. The feature extractor is module-level numpy code in pipecat 1.14, already
    shared; the session (~30 MB, ~100 ms per call) was not, nor the thread it runs on.
    """

    def __init__(self, *, sample_rate: int | None = None, params: SmartTurnParams | None = None):
        """Like `LocalSmartTurnAnalyzerV3`, without loading the model again."""
        BaseSmartTurn.__init__(self, sample_rate=sample_rate, params=params)
        self._log_data = False  # pipecat's debug option writes every turn's audio to disk
        self._session = shared_session()

    @property
    def _model_executor(self) -> ThreadPoolExecutor:
        """The process's inference threads (pipecat 1.14 hook; it starts a thread per call).

        `BaseSmartTurn.cleanup` shuts down only a thread of the analyzer's own: none here.
        """
        return shared_executor()
