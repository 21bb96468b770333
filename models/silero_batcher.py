"""Silero VAD v5 on one ONNX session per process, the ready windows of every call in one run."""

import asyncio
import contextvars
import threading
import weakref
from functools import cache
from importlib import resources

import numpy as np
import onnxruntime
from loguru import logger

WINDOW_SAMPLES = {8000: 256, 16000: 512}  # the rates the model was trained for
# Samples of the previous window the model sees before each window (pipecat's SileroOnnxModel
# and silero-vad's own wrapper prepend them; the model scores worse without).
CONTEXT_SAMPLES = {8000: 32, 16000: 64}
STATE_SHAPE = (2, 1, 128)  # one stream's recurrent state; a batch stacks them on axis 1
# How long the process's batcher waits after a first window for others (python -m
# bench.vad_batch, 2 cores, 10 to 100 calls): the next loop turn alone gathered 1.4 to 2.5
# windows a run below 50 calls and saved up to 20% of the VAD's CPU; 2 ms gathered 2 to 11
# and saved 17 to 50%, for ~2 ms more from packet to VAD state; 5 ms saved little more for
# twice the wait. Next to the VAD's 200 ms start and stop, 2 ms is noise. A lone call does
# not wait: it cost it ~15% more VAD CPU (a second wake-up a window) for nothing.
SHARED_DELAY_SECS = 0.002


class SileroModel:
    """The Silero VAD v5 model pipecat bundles: a batch of windows and their states in.

    `input` is (batch, context + window) float32 samples, `state` (2, batch, 128), `sr` the
    rate (one per run); out come each row's speech probability and its next state.
    """

    def __init__(self, path: str):
        """Load the model on one CPU thread (as pipecat does: a second one only spins)."""
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            path, providers=["CPUExecutionProvider"], sess_options=options
        )

    def run(
        self, rows: np.ndarray, state: np.ndarray, sample_rate: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Speech probabilities (batch,) float32, and the next state (2, batch, 128)."""
        rate = np.array(sample_rate, dtype=np.int64)
        output, next_state = self.session.run(None, {"input": rows, "state": state, "sr": rate})
        return output[:, 0], next_state


@cache
def shared_model() -> SileroModel:
    """The process's Silero session (loaded on first use; call early to pre-load)."""
    # The model pipecat bundles; loading it costs ~50 ms, running it keeps no shared state.
    path = resources.files("pipecat.audio.vad.data").joinpath("silero_vad.onnx")
    return SileroModel(str(path))


class SileroStream:
    """One audio stream's model state: the recurrent state and the context samples.

    Kept exactly as pipecat's `SileroOnnxModel` keeps them at batch size 1: zeros after a
    reset, then each window's state out and the last context samples of its input.
    """

    __slots__ = ("__weakref__", "context", "context_samples", "state")

    def __init__(self, sample_rate: int):
        """A fresh stream at `sample_rate` (8 or 16 kHz)."""
        self.context_samples = CONTEXT_SAMPLES[sample_rate]
        self.reset()

    def reset(self) -> None:
        """Forget everything heard (pipecat's `reset_states`)."""
        self.state = np.zeros(STATE_SHAPE, dtype=np.float32)
        self.context = np.zeros(self.context_samples, dtype=np.float32)

    def row(self, samples: np.ndarray) -> np.ndarray:
        """The model's input for the next window: the context, then the window."""
        return np.concatenate((self.context, samples))

    def advance(self, row: np.ndarray, state: np.ndarray) -> None:
        """Take the state the model returned for `row` (this stream's next window)."""
        self.state = state
        self.context = row[-self.context_samples :]


# A window's speech probability and its stream's next state; None: the run failed.
Scored = tuple[np.float32, np.ndarray] | None


class SileroBatcher:
    """Scores the windows calls submit, all that are waiting in one `Session.run` per rate.

    The run happens on the loop's next turn (`delay` 0: the windows submitted by every call
    the loop woke for at once) or `delay` seconds after the first window waiting, if another
    stream that could join is alive (`attach`). A failed run resolves each of its windows
    with None and logs once. The loop's thread only.
    """

    def __init__(self, model: SileroModel | None = None, *, delay: float = 0.0):
        """Batch on `model` (the process's), flushing `delay` seconds after a first window."""
        self.model = model or shared_model()
        self.delay = delay
        self.runs = 0  # `Session.run`s made,
        self.windows = 0  # and the windows they scored
        self.largest = 0  # the most windows in one run
        self._waiting: dict[asyncio.Future, tuple[np.ndarray, np.ndarray, int]] = {}
        self._flush_handle: asyncio.Handle | None = None
        self._streams: weakref.WeakSet[SileroStream] = weakref.WeakSet()

    def attach(self, stream: SileroStream) -> None:
        """Count `stream` among those that may submit (until it is garbage)."""
        self._streams.add(stream)

    def submit(self, row: np.ndarray, state: np.ndarray, sample_rate: int) -> asyncio.Future:
        """A window to score (its context included) and its stream's state: its `Scored`.

        Cancelling the future withdraws the window (or `discard` it).
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting[future] = (row, state, sample_rate)
        if self._flush_handle is None:
            # In no call's context: the run serves them all (a log line names none of them).
            context = contextvars.Context()
            if self.delay > 0 and len(self._streams) > 1:  # alone, waiting only costs
                self._flush_handle = loop.call_later(self.delay, self._flush, context=context)
            else:
                self._flush_handle = loop.call_soon(self._flush, context=context)
        return future

    def discard(self, future: asyncio.Future) -> None:
        """Withdraw a window not scored yet (its caller gave up waiting)."""
        self._waiting.pop(future, None)
        if not self._waiting and self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    @property
    def queued(self) -> int:
        """Windows waiting for the next run."""
        return len(self._waiting)

    def _flush(self) -> None:
        self._flush_handle = None
        waiting, self._waiting = self._waiting, {}
        by_rate: dict[int, list[tuple[asyncio.Future, np.ndarray, np.ndarray]]] = {}
        for future, (row, state, rate) in waiting.items():
            if not future.done():  # a cancelled one is withdrawn
                by_rate.setdefault(rate, []).append((future, row, state))
        for rate, batch in by_rate.items():
            self._run(rate, batch)

    def _run(self, rate: int, batch: list[tuple[asyncio.Future, np.ndarray, np.ndarray]]) -> None:
        futures, rows, states = zip(*batch, strict=True)
        try:
            if len(batch) == 1:  # the usual case with few calls: no copies
                confidences, state = self.model.run(rows[0][None], states[0], rate)
            else:
                confidences, state = self.model.run(
                    np.stack(rows), np.concatenate(states, axis=1), rate
                )
        except Exception as e:  # as pipecat: a window it cannot score is not speech
            logger.error(f"Error analyzing audio with Silero VAD ({len(batch)} windows): {e}")
            results: list[Scored] = [None] * len(batch)
        else:
            results = [(confidences[i], state[:, i : i + 1]) for i in range(len(batch))]
        self.runs += 1
        self.windows += len(batch)
        self.largest = max(self.largest, len(batch))
        for future, result in zip(futures, results, strict=True):
            future.set_result(result)


_batchers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SileroBatcher]" = (
    weakref.WeakKeyDictionary()
)
_batchers_lock = threading.Lock()


def shared_batcher() -> SileroBatcher:
    """The running loop's batcher: one per process serving one loop (tests may run several)."""
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(loop)
    if batcher is None:
        with _batchers_lock:
            batcher = _batchers.setdefault(loop, SileroBatcher(delay=SHARED_DELAY_SECS))
    return batcher
