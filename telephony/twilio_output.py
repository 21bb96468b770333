"""The Twilio transport's output: the bot's audio to the caller's phone, and what they heard."""

import asyncio
import bisect
import itertools
import time
from dataclasses import dataclass, field, replace

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    EndWorkerFrame,
    Frame,
    InterruptionFrame,
    OutputAudioRawFrame,
    StartFrame,
    SystemFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_output import BaseOutputTransport

from telephony.frames import ReplyCutFrame, SentenceEndFrame
from telephony.line import PhoneLine, TwilioParams
from telephony.playout import SAMPLE_RATE, Playout, ms
from telephony.spoken import SpokenReply

PLAYED_OUT_GRACE_SECS = 5.0  # at the end, how long past its audio to wait for Twilio's echoes


@dataclass(order=True)
class _Held:
    """A frame waiting for the caller to hear the audio before it."""

    position: int
    seq: int
    frame: Frame = field(compare=False)
    direction: FrameDirection = field(compare=False)


class TwilioOutputTransport(BaseOutputTransport):
    """Plays the bot on the phone line, and tells the graph what the caller has heard.

    Audio goes to Twilio at real time (`playout_lead_secs` ahead), a `mark` after every chunk;
    Twilio echoes a mark once the caller's phone has played the audio before it (`Playout`).
    What the graph sees from here on follows the caller's ear, not the send clock:

    | frame                                        | what it does                             |
    |----------------------------------------------|------------------------------------------|
    | audio ↓                                      | played on the line                       |
    | TTSStarted, TTSText, SentenceEnd ↓, word     | place the reply's words on its audio     |
    |   TTSText (pts) ↓, TTSStopped ↓              |   (`SpokenReply`)                        |
    | any frame ↓ but system ones; BotStarted/     | passed on once the caller has heard the  |
    |   BotStoppedSpeaking ↕                       |   audio before it: text as it is heard,  |
    |                                              |   EndWorker once the last word has been  |
    | VADUserStartedSpeaking ↓ over interruptible  | paused: Twilio `clear`, the audio not    |
    |   audio (`pause_on_speech`)                  |   heard kept                             |
    | VADUserStoppedSpeaking ↓ while paused        | resumed where it paused, after           |
    |                                              |   `resume_after_secs` of quiet           |
    | Interruption ↓                               | cut where the caller stopped hearing:    |
    |                                              |   `clear`, the rest of the reply and its |
    |                                              |   frames dropped; ReplyCut ↕ with the    |
    |                                              |   words heard                            |
    | End ↓                                        | once the last audio has been heard: the  |
    |                                              |   line closes, End goes on               |
    """

    def __init__(self, line: PhoneLine, params: TwilioParams, **kwargs):
        """Play on `line`, as `params` say."""
        super().__init__(params, **kwargs)
        self._line = line
        self._lead_secs = params.playout_lead_secs
        self._pause_on_speech = params.pause_on_speech
        self._resume_after_secs = params.resume_after_secs
        self._playout = Playout()
        self._replies: list[SpokenReply] = []  # not all heard yet, in order
        # A timed word's frame id → its pts, then its position on the audio: words are placed
        # on their reply's audio in order with it, not by pipecat's clock, which a reply held
        # back (`ReplyHold`) or a paused playout has left behind.
        self._word_at: dict[int, int] = {}
        self._held: list[_Held] = []
        self._seq = itertools.count()
        self._sending = asyncio.Lock()  # one writer at a time: a `clear` after any media
        self._releasing = asyncio.Lock()  # held frames go on in order
        self._audio_waiting = asyncio.Event()
        self._played_out = asyncio.Event()
        self._played_out.set()
        self._cutting = False
        self._partial: OutputAudioRawFrame | None = None  # audio short of a chunk (see below)
        self._ended = False  # after End or Cancel nothing waits for the caller's ear
        self._sender: asyncio.Task | None = None
        self._resume: asyncio.Task | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, frame: StartFrame):
        """Start sending audio."""
        await super().start(frame)
        await self.set_transport_ready(frame)
        if not self._sender:
            self._sender = self.create_task(self._send_audio(), name="twilio-playout")

    async def stop(self, frame: EndFrame):
        """Let the caller hear the rest, then close the line."""
        await super().stop(frame)
        await self._resume_playout()  # nothing can barge in now
        unheard = ms(self._playout.accepted - self._playout.heard) / 1000
        try:
            await asyncio.wait_for(self._played_out.wait(), unheard + PLAYED_OUT_GRACE_SECS)
        except TimeoutError:
            logger.warning(f"{self}: Twilio did not echo the last audio's marks; closing anyway")
        await self._stop_tasks()
        self._ended = True
        await self._release(everything=True)
        await self._line.close()

    async def cancel(self, frame: CancelFrame):
        """Stop at once and close the line."""
        await super().cancel(frame)
        self._ended = True
        await self._stop_tasks()
        await self._line.close()

    async def cleanup(self):
        """Stop the sender and the resume timer."""
        await super().cleanup()
        await self._stop_tasks()

    async def _stop_tasks(self) -> None:
        await self._cancel_resume()
        if self._sender:
            task, self._sender = self._sender, None
            await self.cancel_task(task)

    # -- frames in ----------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Cut on an interruption (before pipecat drops its queues); pause on caller speech."""
        if isinstance(frame, InterruptionFrame):
            if self._partial is not None and self._partial.interruptible:
                self._partial = None
            cut = await self._cut()
            await super().process_frame(frame, direction)
            self._cutting = False
            if cut:
                await self.push_frame(cut)
                await self.push_frame(ReplyCutFrame(cut.heard, cut.spoken, cut.heard_ms), UP)
            await self._release()
            return
        if direction == FrameDirection.DOWNSTREAM:
            frame = await self._in_whole_chunks(frame)
            if frame is None:
                return
            if isinstance(frame, TTSTextFrame) and frame.pts is not None:
                self._word_at[frame.id], frame.pts = frame.pts, None
        await super().process_frame(frame, direction)
        if isinstance(frame, VADUserStartedSpeakingFrame):
            await self._caller_speaks()
        elif isinstance(frame, VADUserStoppedSpeakingFrame) and self._playout.paused:
            await self._cancel_resume()
            self._resume = self.create_task(self._resume_later(), name="twilio-resume")

    async def _in_whole_chunks(self, frame: Frame) -> Frame | None:
        """The audio for pipecat's chunker in whole chunks; the rest kept here until the next.

        pipecat's output keeps audio short of a chunk until more comes, and drops it when the
        bot stops speaking: when the end of one reply is played out after the next reply's
        first audio came in, that audio was lost (10-40 ms in the middle of a word). The tail
        is kept here instead, and goes to pipecat just before its reply's TTSStopped (which
        pads it to a chunk) or anything else that must follow it.
        """
        if isinstance(frame, OutputAudioRawFrame):
            if self._partial is not None and self._partial.interruptible != frame.interruptible:
                await super().process_frame(self._take_partial(), FrameDirection.DOWNSTREAM)
            audio = (self._partial.audio if self._partial else b"") + frame.audio
            whole = len(audio) - len(audio) % self.audio_chunk_size
            self._partial = _with_audio(frame, audio[whole:]) if whole < len(audio) else None
            return _with_audio(frame, audio[:whole]) if whole else None
        if self._partial is not None and isinstance(frame, (TTSStoppedFrame, EndFrame)):
            await super().process_frame(self._take_partial(), FrameDirection.DOWNSTREAM)
        return frame

    def _take_partial(self) -> OutputAudioRawFrame:
        partial, self._partial = self._partial, None
        assert partial is not None
        return partial

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        """Take the chunk into the playout (the sender plays it); False if it was cut."""
        if self._cutting and frame.interruptible:
            return False  # the reply being cut: pipecat's queue had handed it over already
        if frame.sample_rate != SAMPLE_RATE or frame.num_channels != 1:
            logger.warning(f"{self}: dropped {frame.sample_rate} Hz audio: Twilio plays 8 kHz")
            return False
        self._playout.accept(frame.audio, interruptible=frame.interruptible)
        self._played_out.clear()
        self._audio_waiting.set()
        return True

    async def write_transport_frame(self, frame: Frame):
        """Place the reply's start and its sentences on the audio, in order with it."""
        accepted = self._playout.accepted
        if isinstance(frame, TTSStartedFrame):
            self._replies.append(SpokenReply(start=accepted))
        elif isinstance(frame, TTSTextFrame) and frame.id in self._word_at:
            pts = self._word_at[frame.id]
            self._word_at[frame.id] = self._reply().add_word(frame.text, pts)
        elif isinstance(frame, TTSTextFrame):
            self._reply().add_text(frame.text)
        elif isinstance(frame, SentenceEndFrame):
            self._reply().end_sentence(accepted)
        elif isinstance(frame, EndWorkerFrame):
            await self._resume_playout()  # the call is ending: nothing will cut it now

    def _reply(self) -> SpokenReply:
        if not self._replies:  # text with no TTSStarted before it
            self._replies.append(SpokenReply(start=self._playout.accepted))
        return self._replies[-1]

    # -- frames out, as the caller hears the audio before them --------------------------------

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM):
        """Hold the frames that must wait for the caller's ear; pass the others on."""
        if self._ended:
            await super().push_frame(frame, direction)
            return
        if isinstance(frame, (BotStartedSpeakingFrame, BotStoppedSpeakingFrame)):
            self._hold(self._playout.accepted, frame, direction)
        elif direction == FrameDirection.DOWNSTREAM and not isinstance(frame, SystemFrame):
            if self._cutting and frame.interruptible:
                return  # of the reply being cut
            self._hold(self._position_of(frame), frame, direction)
        else:
            await super().push_frame(frame, direction)
            return
        await self._release()

    def _position_of(self, frame: Frame) -> int:
        """Where on the audio `frame` is due: a word by its timestamp, others where they came."""
        if isinstance(frame, TTSStoppedFrame):
            self._reply().finish(self._playout.accepted)
        elif isinstance(frame, TTSTextFrame) and frame.id in self._word_at:
            return self._word_at.pop(frame.id)
        return self._playout.accepted

    def _hold(self, position: int, frame: Frame, direction: FrameDirection) -> None:
        bisect.insort(self._held, _Held(position, next(self._seq), frame, direction))

    async def _release(self, *, everything: bool = False) -> None:
        """Pass on, in order, the held frames whose audio before them has been heard."""
        async with self._releasing:
            while self._held and (everything or self._held[0].position <= self._playout.heard):
                held = self._held.pop(0)
                await super().push_frame(held.frame, held.direction)

    # -- audio out ----------------------------------------------------------------------------

    async def _send_audio(self) -> None:
        """Send the playout's audio as the phone plays it, `playout_lead_secs` ahead."""
        while True:
            await self._audio_waiting.wait()
            delay = self._playout.send_delay(time.monotonic(), self._lead_secs)
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            async with self._sending:
                taken = self._playout.take(time.monotonic())
                if taken is None:
                    self._audio_waiting.clear()
                    continue
                pcm, mark = taken
                messages = self._line.messages
                if not (await self._line.send(messages.media(pcm))):
                    self._audio_waiting.clear()  # the line is closed: nothing will be heard
                    self._played_out.set()
                    continue
                await self._line.send(messages.mark(mark))

    async def heard(self, mark: str) -> None:
        """Twilio echoed `mark` (the input hands echoes here)."""
        if not self._playout.sent_by_us(mark):
            self._line.messages.problem("echo", f"dropped an echo of mark {mark[:40]!r}, not ours")
            return
        if not self._playout.echo(mark, time.monotonic()):
            return
        heard = self._playout.heard
        while self._replies and self._replies[0].end is not None and self._replies[0].end <= heard:
            self._replies.pop(0)
        if not self._playout.playing:
            self._played_out.set()
        await self._release()

    async def caller_gone(self) -> None:
        """The caller hung up: nothing more will be heard, nothing waits for it."""
        self._played_out.set()
        await self._release(everything=True)

    # -- the caller speaks over the bot -------------------------------------------------------

    async def _caller_speaks(self) -> None:
        await self._cancel_resume()  # speaking again soon after stopping: stay paused
        now = time.monotonic()
        playout = self._playout
        if not self._pause_on_speech or playout.paused or not playout.playing:
            return
        if not playout.interruptible_at(now):
            return
        async with self._sending:
            position = playout.pause(now)
            await self._line.send(self._line.messages.clear())
        logger.info(f"caller speech: the bot's audio paused at {ms(position):.0f} ms")

    async def _resume_later(self) -> None:
        await asyncio.sleep(self._resume_after_secs)
        self._resume = None
        await self._resume_playout()

    async def _resume_playout(self) -> None:
        """No barge-in came of the speech: play on from where the pause stopped."""
        await self._cancel_resume()
        if self._playout.paused:
            self._playout.resume()
            self._audio_waiting.set()
            logger.info(f"no barge-in: the bot's audio resumed at {ms(self._playout.heard):.0f} ms")

    async def _cancel_resume(self) -> None:
        if self._resume:
            task, self._resume = self._resume, None
            await self.cancel_task(task)

    async def _cut(self) -> ReplyCutFrame | None:
        """A barge-in: stop the audio where the caller's ear is, and say what they heard."""
        self._cutting = True
        self._word_at.clear()  # the words in flight are the cut reply's
        await self._cancel_resume()
        playout, now = self._playout, time.monotonic()
        if not playout.playing:
            return None
        accepted, was_paused = playout.accepted, playout.paused
        async with self._sending:
            position = playout.cut(now)
            if not was_paused:
                await self._line.send(self._line.messages.clear())
        cut = self._cut_reply(position, accepted)
        self._drop_unheard(position)
        await self._release()  # what was heard goes on ahead of the interruption
        if not playout.playing:
            self._played_out.set()
        if cut:
            logger.info(f"barge-in: the caller heard {cut.heard!r}")
        return cut

    def _cut_reply(self, position: int, accepted: int) -> ReplyCutFrame | None:
        """The reply playing (or next to play) at `position`, as the caller heard it."""
        replies, self._replies = self._replies, []
        for reply in replies:
            if reply.end is not None and reply.end <= position:
                continue
            heard = reply.heard(position, accepted) if reply.start < position else ""
            heard_ms = ms(max(position - reply.start, 0))
            return ReplyCutFrame(heard=heard, spoken=reply.spoken(), heard_ms=heard_ms)
        return None

    def _drop_unheard(self, position: int) -> None:
        """Drop the held frames of audio never heard; keep the rest (speaking state, ends)."""
        kept: list[_Held] = []
        for held in self._held:
            frame = held.frame
            if held.position <= position or isinstance(
                frame, (BotStartedSpeakingFrame, BotStoppedSpeakingFrame)
            ):
                kept.append(_Held(min(held.position, position), held.seq, frame, held.direction))
            elif not frame.interruptible:
                kept.append(_Held(self._playout.accepted, held.seq, frame, held.direction))
        self._held = sorted(kept)


def _with_audio(frame: OutputAudioRawFrame, audio: bytes) -> OutputAudioRawFrame:
    """`frame` with other audio (a new frame of the same kind, as interruptible)."""
    part = replace(frame, audio=audio)
    part.interruptible = frame.interruptible
    return part


UP = FrameDirection.UPSTREAM
