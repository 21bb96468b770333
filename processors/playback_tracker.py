"""Knows what the caller has heard, from Twilio's mark echoes rather than the send clock."""

import asyncio
import time
from dataclasses import replace

from loguru import logger
from pipecat.frames.frames import (
    BotStoppedSpeakingFrame,
    EndWorkerFrame,
    Frame,
    InterruptionFrame,
    OutputAudioRawFrame,
    SystemFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from processors.frames import (
    EndCallFrame,
    PlaybackEchoFrame,
    PlaybackMarkFrame,
    PlayoutPauseFrame,
)
from processors.playback_state import Playback, Reply, Sentence
from telephony.frames import SentenceEndFrame

# After the caller's speech stops, how long a pause waits for more speech before resuming:
# words are often split into VAD segments ~0.1 s apart, and a barge-in must not resume.
RESUME_AFTER_SECS = 0.3


class PlaybackTracker(FrameProcessor):
    """Sits between the TTS and the output transport and keeps `Playback` true to the phone.

    | frame                                  | what it does                                    |
    |----------------------------------------|-------------------------------------------------|
    | TTSStarted ↓                           | opens a reply                                   |
    | TTSText ↓                              | records the sentence (passes on)                |
    | audio ↓                                | passes on, then a PlaybackMark `reply:ms` ↓     |
    | SentenceAudioEnd ↓                     | times the sentence's end (consumed)             |
    | PlaybackEcho ↓ (from the input)        | advances what was heard (consumed)              |
    | VADUserStarted ↓ while the reply plays | PlayoutPause ↓, then holds the reply's frames   |
    | VADUserStopped ↓ while paused          | 0.3 s later: the reply from where it paused     |
    | Interruption ↓                         | records what was heard as a context correction  |
    | BotStoppedSpeaking ↑ while playing     | held until the last mark of the reply echoes    |
    | EndCall ↓                              | resumes; EndWorker ↓ once all before has played |

    The caller hears the bot stop as soon as they speak; the turn strategy decides later. A
    real barge-in (Interruption) ends the reply where it paused, a cough or an "mm-hm"
    resumes it. The pause makes the output transport drop what it had queued, so the reply's
    frames are kept, and a resume sends again those that had not come out of it.
    """

    def __init__(self, playback: Playback, *, resume_after_secs=RESUME_AFTER_SECS, **kwargs):
        """Track into `playback`, the call's shared record."""
        super().__init__(**kwargs)
        self._playback = playback
        self._resume_after_secs = resume_after_secs
        self._owe_bot_stopped = False
        self._end_call: EndCallFrame | None = None
        self._frames: list[tuple[float, Frame]] = []  # the reply's, at their audio position
        self._unsent = 0  # the first of `_frames` not pushed on yet
        self._resume_ms = 0.0  # audio up to here is not sent again
        self._resume_timer: asyncio.Task | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Track the frame, then pass it on unless it is ours to consume."""
        await super().process_frame(frame, direction)
        if isinstance(frame, PlaybackEchoFrame):
            await self._echo(frame.mark)
        elif isinstance(frame, SentenceEndFrame):
            self._sentence_end()
        elif isinstance(frame, EndCallFrame):
            self._end_call = frame
            self._playback.ending = True
            await self._resume()  # the caller is muted now: no barge-in can come
            await self._maybe_finish()
        elif isinstance(frame, BotStoppedSpeakingFrame) and direction == FrameDirection.UPSTREAM:
            self._owe_bot_stopped = True
            await self._maybe_finish()
        else:
            await self._track(frame)
            await self._pass(frame, direction)

    async def _track(self, frame: Frame) -> None:
        playback = self._playback
        if isinstance(frame, TTSStartedFrame) and not self._paused():
            await self._start_reply()  # (while paused, the next one waits in this one)
        elif isinstance(frame, TTSTextFrame) and frame.text.strip():
            (await self._reply()).sentences.append(Sentence(frame.text))
        elif isinstance(frame, TTSStoppedFrame) and playback.reply:
            playback.reply.synthesized = True
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            await self._pause()
        elif isinstance(frame, VADUserStoppedSpeakingFrame) and self._paused():
            await self._cancel_resume()
            self._resume_timer = self.create_task(self._resume_later())
        elif isinstance(frame, InterruptionFrame):
            await self._forget_frames()
            correction = playback.interrupt(time.monotonic())
            if correction:
                logger.info(f"barge-in: the caller heard {correction.heard!r}")
            if self._owe_bot_stopped:
                self._owe_bot_stopped = False
                await self.push_frame(BotStoppedSpeakingFrame(), FrameDirection.UPSTREAM)

    async def _reply(self) -> Reply:
        return self._playback.reply or await self._start_reply()

    async def _start_reply(self) -> Reply:
        await self._forget_frames()
        self._playback.in_transport.clear()
        return self._playback.start_reply()

    async def _forget_frames(self) -> None:
        await self._cancel_resume()
        self._frames, self._unsent, self._resume_ms = [], 0, 0.0

    def _paused(self) -> bool:
        reply = self._playback.reply
        return bool(reply and reply.paused_ms is not None)

    async def _pass(self, frame: Frame, direction: FrameDirection) -> None:
        """Keep the reply's frames (its audio, and what the transport may drop), then flush."""
        reply = self._playback.reply
        if isinstance(frame, OutputAudioRawFrame):
            reply = await self._reply()
            reply.audio_ms += len(frame.audio) / 2 / frame.sample_rate * 1000
            self._frames.append((reply.audio_ms, frame))
        elif (
            reply
            and direction == FrameDirection.DOWNSTREAM
            and frame.interruptible
            and not isinstance(frame, SystemFrame)
        ):
            self._frames.append((reply.audio_ms, frame))
            self._playback.in_transport.add(frame.id)
        else:
            await self.push_frame(frame, direction)
            return
        await self._flush()

    async def _flush(self) -> None:
        """Push on the reply's frames not pushed yet, unless paused."""
        while self._unsent < len(self._frames) and not self._paused():
            end_ms, frame = self._frames[self._unsent]
            self._unsent += 1
            if isinstance(frame, OutputAudioRawFrame):
                if end_ms > self._resume_ms:
                    await self._send(_tail(frame, end_ms - self._resume_ms), end_ms)
            elif frame.id in self._playback.in_transport:
                await self.push_frame(frame)

    async def _send(self, audio: OutputAudioRawFrame, end_ms: float) -> None:
        reply = await self._reply()
        reply.pending.append(end_ms)
        await self.push_frame(audio)
        await self.push_frame(PlaybackMarkFrame(message=f"{reply.id}:{end_ms:.0f}"))

    async def _pause(self) -> None:
        """The caller started speaking over the reply: stop it at the phone, where it is."""
        await self._cancel_resume()  # speaking again soon after stopping: stay paused
        reply = self._playback.reply
        if not reply or not reply.playing or reply.paused_ms is not None:
            return
        if self._playback.ending or not reply.audio_ms:
            return
        logger.info(f"caller speech: reply paused at {reply.pause(time.monotonic()):.0f} ms")
        await self.push_frame(PlayoutPauseFrame())

    async def _resume_later(self) -> None:
        await asyncio.sleep(self._resume_after_secs)
        self._resume_timer = None
        await self._resume()

    async def _resume(self) -> None:
        """No barge-in came of the speech: send the reply again from where it paused."""
        await self._cancel_resume()
        reply = self._playback.reply
        if not reply or reply.paused_ms is None:
            return
        self._resume_ms, self._unsent = reply.resume(time.monotonic()), 0
        logger.info(f"no barge-in: reply resumed at {self._resume_ms:.0f} ms")
        await self._flush()
        await self._maybe_finish()

    async def _cancel_resume(self) -> None:
        if self._resume_timer:
            timer, self._resume_timer = self._resume_timer, None
            await self.cancel_task(timer)

    def _sentence_end(self) -> None:
        reply = self._playback.reply
        untimed = [s for s in reply.sentences if s.end_ms is None] if reply else []
        if untimed:
            untimed[0].end_ms = reply.audio_ms

    async def _echo(self, name: str) -> None:
        reply_id, _, ms = name.partition(":")
        reply = self._playback.reply
        if not reply or str(reply.id) != reply_id or reply.paused_ms is not None:
            return  # an earlier reply's marks, or a pause's: echoed by Twilio's `clear`
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

    async def cleanup(self):
        """Stop a pending resume."""
        await super().cleanup()
        await self._cancel_resume()


def _tail(audio: OutputAudioRawFrame, ms: float) -> OutputAudioRawFrame:
    """The last `ms` of `audio`, as a frame of the same kind (`audio` itself if shorter)."""
    size = round(ms * audio.sample_rate / 1000) * 2 * audio.num_channels
    if size >= len(audio.audio):
        return audio
    return replace(audio, audio=audio.audio[len(audio.audio) - size :])
