"""24 kHz → 8 kHz for OpenAI's speech: a streaming low-pass FIR that holds back ~3 ms, not ~150."""

import numpy as np

IN_RATE, OUT_RATE = 24000, 8000
FACTOR = IN_RATE // OUT_RATE
# 145 taps: a Kaiser-windowed sinc cut at 3.7 kHz, ≥ 60 dB down from 4.3 kHz (so nothing folds
# back into the telephone band), linear phase, a group delay of 72 samples (3 ms).
TAPS = 145
CUTOFF_HZ = 3700.0
KAISER_BETA = 6.0


def _lowpass() -> np.ndarray:
    n = np.arange(TAPS) - (TAPS - 1) / 2
    taps = np.sinc(2 * CUTOFF_HZ / IN_RATE * n) * np.kaiser(TAPS, KAISER_BETA)
    return taps / taps.sum()


class Downsampler:
    """Turns a stream of 24 kHz 16-bit mono PCM into 8 kHz, chunk by chunk.

    Output sample m is the low-passed input at 3m, so the output is not delayed: each chunk
    gives every sample whose filter window has arrived (all but the last 72 input samples'
    worth), and `flush()` gives the rest, so one utterance of n samples becomes exactly
    ceil(n / 3), however it was cut into chunks. Odd bytes wait for their other half.
    """

    def __init__(self) -> None:
        taps = _lowpass()
        # Polyphase: output i is the sum over phases p of taps[p::3] convolved with every third
        # input sample; np.convolve, not a matrix product, so numpy's BLAS threads stay idle.
        self._phases = [(taps[p::FACTOR], divmod(TAPS - 1 - p, FACTOR)) for p in range(FACTOR)]
        self._delay = (TAPS - 1) // 2
        self.reset()

    def reset(self) -> None:
        """Start a new utterance."""
        # Input from sample `_next * 3 + delay - (TAPS - 1)` on: before 0 it is silence.
        self._window = np.zeros(TAPS - 1 - self._delay)
        self._next = 0  # the next output sample
        self._received = 0  # input samples so far
        self._odd = b""

    def process(self, pcm: bytes) -> bytes:
        """Downsample the next chunk of the utterance."""
        data, self._odd = self._odd + pcm, b""
        if len(data) % 2:
            data, self._odd = data[:-1], data[-1:]
        samples = np.frombuffer(data, dtype="<i2")
        self._received += len(samples)
        self._window = np.concatenate([self._window, samples])
        return self._drain(len(self._window))

    def flush(self) -> bytes:
        """The end of the utterance: its last samples; then ready for the next one."""
        self._window = np.concatenate([self._window, np.zeros(self._delay + FACTOR)])
        total = -(-self._received // FACTOR)
        out = self._drain(len(self._window), limit=total - self._next)
        self.reset()
        return out

    def _drain(self, available: int, limit: int | None = None) -> bytes:
        count = (available - TAPS) // FACTOR + 1 if available >= TAPS else 0
        count = max(0, min(count, limit if limit is not None else count))
        if not count:
            return b""
        out = np.zeros(count)
        for taps, (start, phase) in self._phases:
            out += np.convolve(self._window[phase::FACTOR], taps)[start : start + count]
        self._next += count
        self._window = self._window[count * FACTOR :]
        return np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes()
