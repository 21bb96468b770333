"""A speech-timeout turn end that counts the caller's silence from where their voice ended."""

from collections import deque

import numpy as np
from pipecat.frames.frames import Frame, InputAudioRawFrame, VADUserStoppedSpeakingFrame
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy

_HISTORY_FRAMES = 150  # the caller's last few seconds of audio levels, one per packet
_MIN_VOICE_RMS = 100.0  # -50 dBFS: quieter than this is never voice


class SilenceTimedTurnStopStrategy(SpeechTimeoutUserTurnStopStrategy):
    """Ends the turn `stop_secs + user_speech_timeout` after the voice ends, not later.

    Pipecat starts `user_speech_timeout` at the VAD's stop, and Silero's confidence stays
    high for 25-100 ms after the voice ends, then `stop_secs` is rounded up to whole 32 ms
    windows: every turn ends that much later than configured. The audio level says when
    the voice really ended, so the timer is shortened by the silence already past the
    VAD's `stop_secs` (by at most `max_credit_secs`).

    | frames                                    | turn ends                               |
    |-------------------------------------------|-----------------------------------------|
    | voice … silence, VADUserStopped (late)    | `stop_secs + timeout` after the voice   |
    | a transcript without a VAD stop (fallback)| as pipecat does                         |
    """

    def __init__(self, *, max_credit_secs: float = 0.15, **kwargs):
        """Like pipecat's, crediting at most `max_credit_secs` of silence the VAD was late."""
        super().__init__(**kwargs)
        self._max_credit_secs = max_credit_secs
        self._levels: deque[tuple[float, float]] = deque(maxlen=_HISTORY_FRAMES)  # (rms, s)
        self._credit_secs = 0.0

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        """Keep the caller's audio levels; on the VAD's stop, work out the credit."""
        if isinstance(frame, InputAudioRawFrame):
            samples = np.frombuffer(frame.audio, dtype=np.int16).astype(np.float32)
            seconds = len(samples) / frame.sample_rate / frame.num_channels
            rms = float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0
            self._levels.append((rms, seconds))
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            late = self.silent_secs() - frame.stop_secs
            self._credit_secs = min(max(late, 0.0), self._max_credit_secs)
        return await super().process_frame(frame)

    def silent_secs(self) -> float:
        """How long the caller's audio has been below their voice's level."""
        if not self._levels:
            return 0.0
        floor = float(np.percentile([rms for rms, _ in self._levels], 10))
        threshold = max(_MIN_VOICE_RMS, 3.0 * floor)  # ~10 dB over the line's noise
        silent = 0.0
        for rms, seconds in reversed(self._levels):
            if rms > threshold:
                break
            silent += seconds
        return silent

    async def _restart_user_speech_timer(self):
        """Start the timer, less the silence the VAD was late to report (pipecat 1.14 hook)."""
        timeout = self._user_speech_timeout
        self._user_speech_timeout, self._credit_secs = timeout - self._credit_secs, 0.0
        try:
            await super()._restart_user_speech_timer()
        finally:
            self._user_speech_timeout = timeout
