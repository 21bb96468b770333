"""A speech-timeout turn end that counts the caller's silence from where their voice ended."""

import asyncio
from collections import deque
from contextlib import suppress

import numpy as np
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    STTMetadataFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_stop import BaseUserTurnStopStrategy

from turns.words_end import WordsEnd, words_end

_HISTORY_FRAMES = 150  # the caller's last few seconds of audio levels, one per packet
_MIN_VOICE_RMS = 100.0  # -50 dBFS: quieter than this is never voice
_PACKET_SLACK_SECS = 0.04  # the packet in flight when a timer runs out, and one more
_MAX_AUDIO_WAIT_SECS = 0.5  # past the timer: for late packets, or a voice the VAD may confirm


class SilenceTimedTurnStopStrategy(BaseUserTurnStopStrategy):
    """Ends the turn `stop_secs + user_speech_timeout` after the voice ends, not later.

    pipecat's `SpeechTimeoutUserTurnStopStrategy` starts `user_speech_timeout` at the VAD's
    stop, and Silero's confidence stays high for 25-100 ms after the voice ends, then
    `stop_secs` is rounded up to whole 32 ms windows: every turn ends that much later than
    configured. The audio level says when the voice really ended, so the timer is shortened
    by the silence already past the VAD's `stop_secs` (by at most `max_credit_secs`).

    The timer runs on the caller's audio as well as the clock: a turn ends only once the
    silence it waits for has arrived, and the latest packet is quiet. Packets come late and
    in bursts (network jitter, a busy event loop), and a packet not yet here is not silence;
    a voice the VAD has not confirmed yet (it needs `start_secs` of speech, then its start
    frame's way here) may be the caller going on. Neither is waited for longer than
    `_MAX_AUDIO_WAIT_SECS` past the timer (a line gone quiet, a noise the VAD never took
    for speech).

    In all else it decides as pipecat's does: the turn ends once the timer has run, a
    transcript has come (unless `wait_for_transcript` is off) and the STT is done: it sent
    a finalized transcript, or its p99 latency (`STTMetadataFrame`) past the VAD's stop
    has gone by. An interim transcript means more text is coming.

    | frames                                       | turn ends                               |
    |----------------------------------------------|-----------------------------------------|
    | voice … silence, VADUserStopped (late), text | `stop_secs + timeout` after the voice   |
    | VADUserStopped, the text later               | when the text comes, once the timer ran |
    | text without a VAD stop (fallback)           | `timeout` after the last text           |
    | VADUserStarted before it ends                | not yet: both waits start over          |
    | the timer ran, its silence not all arrived,  | when it has and is quiet (at most 0.5 s |
    |   or the latest packet loud                  |   later)                                |
    """

    def __init__(
        self,
        *,
        user_speech_timeout: float = 0.6,
        wait_for_transcript: bool = True,
        max_credit_secs: float = 0.15,
        language: str = "",
        **kwargs,
    ):
        """Like pipecat's, crediting at most `max_credit_secs` of silence the VAD was late.

        `language`: the caller's (e.g. "en"), for strategies that read their words.
        """
        super().__init__(**kwargs)
        self._language = language
        self._speech_timeout_secs = user_speech_timeout
        self._needs_transcript = wait_for_transcript
        self._max_credit_secs = max_credit_secs
        self._levels: deque[tuple[float, float]] = deque(maxlen=_HISTORY_FRAMES)  # (rms, s)
        self._audio_secs = 0.0  # the caller's audio received so far
        self._audio_arrived = asyncio.Event()
        self._timer_started = (0.0, 0.0)  # the speech timer's start: (clock, audio) seconds
        self._stt_p99_secs = 0.0  # the STT's final-transcript latency past the VAD's stop
        self._heard = ""  # the turn's transcript so far
        self._guess = ""  # the STT's interim words since its last final transcript
        self._vad_speaking = False  # the caller's voice, as the VAD hears it now
        self._vad_stopped = False  # the VAD stopped during this turn
        self._finalized = False  # the STT has sent all it will for what was said
        self._speech_timer: asyncio.Task | None = None
        self._stt_timer: asyncio.Task | None = None
        self._speech_waited = False
        self._stt_waited = False

    @property
    def wait_for_transcript(self) -> bool:
        """Whether the turn waits for a transcript (pipecat's realtime mode turns it off)."""
        return self._needs_transcript

    @wait_for_transcript.setter
    def wait_for_transcript(self, value: bool) -> None:
        self._needs_transcript = value

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

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        """Follow the caller's audio level, the VAD and the transcripts."""
        if isinstance(frame, InputAudioRawFrame):
            self._keep_level(frame)
        elif isinstance(frame, STTMetadataFrame):
            self._stt_p99_secs = frame.ttfs_p99_latency
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._vad_speaking = True
            await self._start_over()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            await self._on_vad_stop(frame)
        elif isinstance(frame, TranscriptionFrame):
            await self._on_transcript(frame)
        elif isinstance(frame, InterimTranscriptionFrame):
            self._finalized = False  # an earlier final one no longer covers all that was said
            self._guess = frame.text
        return ProcessFrameResult.CONTINUE

    def words_end(self) -> WordsEnd:
        """How the turn's words so far end (its final transcripts, then the STT's guess)."""
        return words_end(f"{self._heard} {self._guess}", self._language)

    async def handle_user_turn_started(self):
        """Wait for this turn's end (the VAD may be hearing the caller already)."""
        self._heard = self._guess = ""
        await self._start_over()

    async def handle_user_turn_stopped(self):
        """Forget the turn that ended."""
        self._heard = self._guess = ""
        self._vad_speaking = False
        await self._start_over()

    async def cleanup(self):
        """Stop the timers."""
        await super().cleanup()
        await self._cancel_timers()

    def _keep_level(self, frame: InputAudioRawFrame) -> None:
        samples = np.frombuffer(frame.audio, dtype=np.int16).astype(np.float32)
        seconds = len(samples) / frame.sample_rate / frame.num_channels
        rms = float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0
        self._levels.append((rms, seconds))
        self._audio_secs += seconds
        self._audio_arrived.set()

    async def _on_vad_stop(self, frame: VADUserStoppedSpeakingFrame) -> None:
        late = self.silent_secs() - frame.stop_secs
        credit = min(max(late, 0.0), self._max_credit_secs)
        self._vad_speaking = False
        self._vad_stopped = True
        await self._start_speech_timer(max(self._speech_timeout_secs - credit, 0.0))
        stt_wait = max(0.0, self._stt_p99_secs - frame.stop_secs)
        self._stt_waited = self._finalized or stt_wait <= 0
        if not self._stt_waited:
            self._stt_timer = self.create_task(self._wait_for_stt(stt_wait), "stt_timeout")

    async def _on_transcript(self, frame: TranscriptionFrame) -> None:
        self._heard += frame.text
        self._guess = ""
        if frame.finalized:
            self._finalized = True
            self._stt_waited = True  # nothing more is coming: no need to wait for it
            await self._cancel_stt_timer()
        if self._speech_waited and self._stt_waited:
            await self._maybe_end_turn()  # the turn was only waiting for words
        elif not self._vad_speaking and not self._vad_stopped:
            # Words the VAD never heard end: the timer counts from the latest of them.
            self._stt_waited = True
            await self._start_speech_timer(self._speech_timeout_secs)

    async def _start_speech_timer(self, secs: float) -> None:
        if self._speech_timer:
            await self.cancel_task(self._speech_timer)
        self._speech_waited = False
        self._timer_started = (asyncio.get_running_loop().time(), self._audio_secs)
        self._speech_timer = self.create_task(self._wait_for_speech(secs), "user_speech_timeout")

    async def _wait_for_speech(self, secs: float) -> None:
        await self._wait_on_the_line(secs)
        self._speech_timer = None  # ending the turn cancels the timers: not this one
        self._speech_waited = True
        await self._maybe_end_turn()

    async def _wait_on_the_line(self, secs: float) -> None:
        """Until `secs` past the timer's start, by the clock and in the caller's quiet audio."""
        loop = asyncio.get_running_loop()
        clock, audio = self._timer_started
        await asyncio.sleep(max(clock + secs - loop.time(), 0.0))
        if not self._levels:
            return  # no audio on this line at all (transcripts only)

        def heard() -> bool:
            arrived = self._audio_secs - audio >= secs - _PACKET_SLACK_SECS
            return arrived and self.silent_secs() > 0

        deadline = loop.time() + _MAX_AUDIO_WAIT_SECS
        while not heard() and loop.time() < deadline:
            self._audio_arrived.clear()
            with suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._audio_arrived.wait()

    async def _wait_for_stt(self, secs: float) -> None:
        await asyncio.sleep(secs)
        self._stt_timer = None
        self._stt_waited = True
        await self._maybe_end_turn()

    async def _maybe_end_turn(self) -> None:
        if self._vad_speaking or (self._needs_transcript and not self._heard):
            return
        if self._speech_waited and self._stt_waited:
            await self.trigger_user_turn_stopped()

    async def _start_over(self) -> None:
        """Drop what progress toward the turn's end was made (the caller spoke, or a turn edge)."""
        self._finalized = self._vad_stopped = False
        self._speech_waited = self._stt_waited = False
        await self._cancel_timers()

    async def _cancel_timers(self) -> None:
        if self._speech_timer:
            await self.cancel_task(self._speech_timer)
            self._speech_timer = None
        await self._cancel_stt_timer()

    async def _cancel_stt_timer(self) -> None:
        if self._stt_timer:
            await self.cancel_task(self._stt_timer)
            self._stt_timer = None
