"""Prompts a caller who says nothing, then says goodbye and hangs up."""

import asyncio

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    EndWorkerFrame,
    ErrorFrame,
    Frame,
    InputDTMFFrame,
    LLMContextFrame,
    StartFrame,
    TTSSpeakFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from telephony.lifecycle import CallLifecycle, spoken_ending

SILENCE_REASON = "the caller stayed silent"


class SilentCaller(FrameProcessor):
    """Says `prompt` after `prompt_secs` of silence, `goodbye` and hangs up `goodbye_secs` later.

    Silence is counted only while the caller's phone is quiet, the caller is not speaking
    and no reply is on its way:

    | frame                                   | what it does                                   |
    |-----------------------------------------|------------------------------------------------|
    | Start ↓                                 | the clock starts (nobody has spoken yet)       |
    |   … while an outbound call is screened  | not yet: the greeting or voicemail starts it   |
    | BotStartedSpeaking ↑                    | stops it                                       |
    | BotStoppedSpeaking ↑ (once heard)       | starts it, unless the caller is speaking       |
    | VADUserStarted ↓, UserStarted ↓         | stops it, and the count starts over: prompt    |
    | VADUserStopped ↓ (no turn)              | starts it from zero                            |
    | InputDTMF ↓ (a key)                     | starts it from zero, and the count over        |
    | UserStopped ↓                           | starts it, unless a reply is due               |
    | LLMContext ↓, TTSSpeak ↓                | a reply is due: stopped until the bot speaks   |
    | Error ↑ while a reply is due            | none is coming: starts it                      |
    | `prompt_secs` of silence                | TTSSpeak(prompt) ↓                             |
    | `goodbye_secs` more after it played     | TTSSpeak(goodbye) ↓, EndWorker ↓                 |
    | EndWorker ↓, End, Cancel                  | stops it for good                              |

    pipecat's user idle timer (`UserIdleController`) counts only from BotStoppedSpeaking to
    UserStarted/BotStarted: it runs on under a cough or an "mm-hm" that never becomes a turn,
    and does not start after a turn nobody answers. Here VAD speech stops the clock, a turn's
    end starts it unless a reply is due (the cascade ran the LLM, a TTSSpeak, or any turn
    when the service answers every turn itself), and an error instead of a reply starts it.

    It must sit upstream of the LLM (its lines are spoken and recorded like any bot speech)
    and of the output transport (BotStoppedSpeaking ↑ then means heard, not sent). It sees the VAD
    and turn frames on either side of the user aggregator, which broadcasts them both ways;
    only downstream of it does it see an LLMContext. `answers_every_turn`: the LLM answers
    every turn that ends (speech to speech), rather than only those the aggregator sends it
    an LLMContext for.
    """

    def __init__(
        self,
        lifecycle: CallLifecycle,
        *,
        prompt: str,
        goodbye: str,
        prompt_secs: float,
        goodbye_secs: float,
        answers_every_turn: bool = False,
        **kwargs,
    ):
        """Watch the call whose lifecycle is `lifecycle` (it knows when the call is ending)."""
        super().__init__(**kwargs)
        self._lifecycle = lifecycle
        self._prompt, self._goodbye = prompt, goodbye
        self._prompt_secs, self._goodbye_secs = prompt_secs, goodbye_secs
        self._answers_every_turn = answers_every_turn
        self._silence_secs = prompt_secs  # what the clock counts to: the prompt, or the goodbye
        self._silence_timer: asyncio.Task | None = None
        self._prompted = False
        self._over = False
        self._bot_speaking = False
        self._caller_speaking = False  # the VAD hears the caller
        self._in_turn = False  # a user turn has started and not ended
        self._reply_due = False  # the bot is about to talk: from the request to its speech

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Start or stop the clock, pass every frame on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, (EndFrame, CancelFrame, EndWorkerFrame)):
            await self._stop()
        elif not self._over:
            await self._follow(frame)
        await self.push_frame(frame, direction)

    async def cleanup(self):
        """Stop the clock."""
        await super().cleanup()
        await self._stop_clock()

    async def _follow(self, frame: Frame) -> None:
        """Who talks, and whether a reply is due."""
        if isinstance(frame, StartFrame):
            await self._start_clock()
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking, self._reply_due = True, False
            await self._stop_clock()
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
            await self._start_clock()
        elif isinstance(frame, (VADUserStartedSpeakingFrame, UserStartedSpeakingFrame)):
            if isinstance(frame, VADUserStartedSpeakingFrame):
                self._caller_speaking = True
            else:
                self._in_turn = True
            self._prompted, self._silence_secs = False, self._prompt_secs
            await self._stop_clock()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._caller_speaking = False
            await self._start_clock()  # (not during a turn: its end decides)
        elif isinstance(frame, InputDTMFFrame):  # a key: the caller is there
            self._prompted, self._silence_secs = False, self._prompt_secs
            await self._start_clock()
        elif isinstance(frame, UserStoppedSpeakingFrame):
            self._in_turn = False
            if self._answers_every_turn:
                await self._reply_coming()
            else:  # an empty turn gets no reply; a turn with one: an LLMContext comes next
                await self._start_clock()
        elif isinstance(frame, LLMContextFrame) and frame.speculation:
            pass  # the turn is not over: its end decides
        elif isinstance(frame, (LLMContextFrame, TTSSpeakFrame)):
            await self._reply_coming()
        elif isinstance(frame, ErrorFrame) and self._reply_due:
            self._reply_due = False
            await self._start_clock()

    async def _reply_coming(self) -> None:
        self._reply_due = True
        await self._stop_clock()

    async def _start_clock(self) -> None:
        """Count silence from zero, if nobody talks and no reply is due."""
        talking = self._bot_speaking or self._caller_speaking or self._in_turn
        if talking or self._reply_due or self._lifecycle.screening:
            return
        await self._stop_clock()
        self._silence_timer = self.create_task(self._count(self._silence_secs), "silence")

    async def _stop_clock(self) -> None:
        if self._silence_timer:
            await self.cancel_task(self._silence_timer)
            self._silence_timer = None

    async def _count(self, secs: float) -> None:
        await asyncio.sleep(secs)
        self._silence_timer = None  # what follows may stop the clock: not this task
        await self._on_silence()

    async def _on_silence(self) -> None:
        if self._over or self._lifecycle.ending:
            return
        if not self._prompted:
            self._prompted = True
            logger.info(f"the caller has been silent {self._prompt_secs:g} s: prompting")
            self._silence_secs = self._goodbye_secs
            await self._reply_coming()
            await self.push_frame(TTSSpeakFrame(self._prompt))
            return
        logger.info(f"the caller is still silent {self._goodbye_secs:g} s after the prompt")
        await self._stop()
        if not self._lifecycle.end(SILENCE_REASON):
            return
        for frame in spoken_ending(self._goodbye, SILENCE_REASON):
            await self.push_frame(frame)

    async def _stop(self) -> None:
        self._over = True
        await self._stop_clock()
