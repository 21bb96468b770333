"""Knows what the caller has heard, from Twilio's mark echoes rather than the send clock."""

import time

from loguru import logger
from pipecat.frames.frames import (
    BotStoppedSpeakingFrame,
    EndWorkerFrame,
    Frame,
    InterruptionFrame,
    OutputAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from processors.frames import (
    EndCallFrame,
    PlaybackEchoFrame,
    PlaybackMarkFrame,
    SentenceAudioEndFrame,
)
from processors.playback_state import Playback, Reply, Sentence


class PlaybackTracker(FrameProcessor):
    """Sits between the TTS and the output transport and keeps `Playback` true to the phone.

    | frame                                  | what it does                                    |
    |----------------------------------------|-------------------------------------------------|
    | TTSStarted ↓                           | opens a reply                                   |
    | TTSText ↓                              | records the sentence (passes on)                |
    | audio ↓                                | passes on, then a PlaybackMark `reply:ms` ↓     |
    | SentenceAudioEnd ↓                     | times the sentence's end (consumed)             |
    | PlaybackEcho ↓ (from the input)        | advances what was heard (consumed)              |
    | Interruption ↓                         | records what was heard as a context correction  |
    | BotStoppedSpeaking ↑ while playing     | held until the last mark of the reply echoes    |
    | EndCall ↓                              | EndWorker ↓ once everything before has played   |
    """

    def __init__(self, playback: Playback, **kwargs):
        """Track into `playback`, the call's shared record."""
        super().__init__(**kwargs)
        self._playback = playback
        self._owe_bot_stopped = False
        self._end_call: EndCallFrame | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Track the frame, then pass it on unless it is ours to consume."""
        await super().process_frame(frame, direction)
        if isinstance(frame, PlaybackEchoFrame):
            await self._echo(frame.mark)
        elif isinstance(frame, SentenceAudioEndFrame):
            self._sentence_end()
        elif isinstance(frame, EndCallFrame):
            self._end_call = frame
            self._playback.ending = True
            await self._maybe_finish()
        elif isinstance(frame, BotStoppedSpeakingFrame) and direction == FrameDirection.UPSTREAM:
            self._owe_bot_stopped = True
            await self._maybe_finish()
        else:
            await self._track(frame)
            await self.push_frame(frame, direction)
            if isinstance(frame, OutputAudioRawFrame):
                await self._mark(frame)

    async def _track(self, frame: Frame) -> None:
        playback = self._playback
        if isinstance(frame, TTSStartedFrame):
            playback.start_reply()
        elif isinstance(frame, TTSTextFrame) and frame.text.strip():
            self._reply().sentences.append(Sentence(frame.text))
        elif isinstance(frame, TTSStoppedFrame) and playback.reply:
            playback.reply.synthesized = True
        elif isinstance(frame, InterruptionFrame):
            correction = playback.interrupt(time.monotonic())
            if correction:
                logger.info(f"barge-in: the caller heard {correction.heard!r}")
            if self._owe_bot_stopped:
                self._owe_bot_stopped = False
                await self.push_frame(BotStoppedSpeakingFrame(), FrameDirection.UPSTREAM)

    def _reply(self) -> Reply:
        return self._playback.reply or self._playback.start_reply()

    async def _mark(self, frame: OutputAudioRawFrame) -> None:
        reply = self._reply()
        reply.sent_ms += len(frame.audio) / 2 / frame.sample_rate * 1000
        reply.pending.append(reply.sent_ms)
        await self.push_frame(PlaybackMarkFrame(message=f"{reply.id}:{reply.sent_ms:.0f}"))

    def _sentence_end(self) -> None:
        reply = self._playback.reply
        untimed = [s for s in reply.sentences if s.end_ms is None] if reply else []
        if untimed:
            untimed[0].end_ms = reply.sent_ms

    async def _echo(self, name: str) -> None:
        reply_id, _, ms = name.partition(":")
        reply = self._playback.reply
        if not reply or str(reply.id) != reply_id:
            return  # an earlier reply's marks, echoed by Twilio's `clear`
        reply.heard_ms, reply.echoed_at = float(ms), time.monotonic()
        while reply.pending and reply.pending[0] <= reply.heard_ms:
            reply.pending.popleft()
        await self._maybe_finish()

    async def _maybe_finish(self) -> None:
        """Once nothing is left to hear: owed BotStoppedSpeaking, then a pending hang-up."""
        reply = self._playback.reply
        if reply and reply.playing:
            return
        if self._owe_bot_stopped:
            self._owe_bot_stopped = False
            await self.push_frame(BotStoppedSpeakingFrame(), FrameDirection.UPSTREAM)
        if self._end_call:
            logger.info(f"ending the call: {self._end_call.reason or 'done'}")
            self._end_call, frame = None, self._end_call
            await self.push_frame(EndWorkerFrame(reason=frame.reason))
