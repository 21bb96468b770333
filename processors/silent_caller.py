"""Prompts a caller who says nothing, then says goodbye and hangs up."""

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    CancelFrame,
    EndFrame,
    EndWorkerFrame,
    ErrorFrame,
    Frame,
    LLMContextFrame,
    StartFrame,
    TTSSpeakFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor, FrameProcessorSetup
from pipecat.turns.user_idle_controller import UserIdleController

from telephony.lifecycle import CallLifecycle, spoken_ending

SILENCE_REASON = "the caller stayed silent"


class CallerSilenceClock(UserIdleController):
    """pipecat's user idle timer, counting only silence the caller was meant to fill.

    pipecat's controller (behind `LLMUserAggregatorParams.user_idle_timeout`) starts on
    BotStoppedSpeaking and stops on BotStarted/UserStarted. On a phone it falls short in
    three ways, mended here:

    - VAD speech that never becomes a turn (a cough, an "mm-hm" under the barge-in
      threshold, the first words before a turn is confirmed) does not stop it: here it does,
      and a VAD stop with no turn starts it again from zero.
    - After a turn it waits for BotStoppedSpeaking, and only the aggregator's own instance is
      told of an empty turn (`wait_for_user`). Here a turn's end starts it, unless a reply is
      due: an LLMContext going down (the cascade ran the LLM), a TTSSpeak, or any turn end
      when the service answers every turn itself (speech to speech). An error while a reply
      is due means none is coming: it starts.
    - BotStoppedSpeaking fires when the output transport has *sent* the audio, seconds before
      the phone has played it. That is left to the processor's place: upstream of
      the Twilio transport, which holds that frame until the caller has heard the reply.
    """

    def __init__(self, *, timeout: float, answers_every_turn: bool):
        """Count `timeout` seconds of silence; see `SilentCaller` for `answers_every_turn`."""
        super().__init__(user_idle_timeout=timeout)
        self._answers_every_turn = answers_every_turn
        self._caller_speaking = False  # the VAD hears the caller
        self._reply_due = False  # the bot is about to talk: from the request to its speech

    def set_timeout(self, secs: float) -> None:
        """Count `secs` from the next start (UserIdleTimeoutUpdateFrame would start it now)."""
        self._user_idle_timeout = secs

    async def reply_due(self) -> None:
        """The bot is about to talk: stopped until it has."""
        self._reply_due = True
        await self._cancel_idle_timer()

    async def process_frame(self, frame: Frame):
        """Track who is talking; start or stop the clock."""
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._caller_speaking = True
            self._waiting_for_user = False
            await self._cancel_idle_timer()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._caller_speaking = False
            await self.wait_for_user()  # (not during a turn: its end decides)
        elif isinstance(frame, UserStoppedSpeakingFrame):
            await super().process_frame(frame)
            if self._answers_every_turn:
                await self.reply_due()
            else:  # an empty turn gets no reply; a turn with one: an LLMContext comes next
                await self.wait_for_user()
        elif isinstance(frame, (LLMContextFrame, TTSSpeakFrame)):
            await self.reply_due()
        elif isinstance(frame, ErrorFrame) and self._reply_due:
            self._reply_due = False
            await self.wait_for_user()
        else:
            if isinstance(frame, BotStartedSpeakingFrame):
                self._reply_due = False
            await super().process_frame(frame)

    async def _start_idle_timer(self):
        """Start it only while nobody talks and no reply is due."""
        if self._caller_speaking or self._reply_due:
            return
        await super()._start_idle_timer()


class SilentCaller(FrameProcessor):
    """Says `prompt` after `prompt_secs` of silence, `goodbye` and hangs up `goodbye_secs` later.

    Silence is counted by `CallerSilenceClock`: only while the caller's phone is quiet, the
    caller is not speaking and no reply is on its way.

    | frame                                   | what it does                                   |
    |-----------------------------------------|------------------------------------------------|
    | Start ↓                                 | the clock starts (nobody has spoken yet)       |
    | BotStartedSpeaking ↑                    | stops it                                       |
    | BotStoppedSpeaking ↑ (once heard)       | starts it, unless the caller is speaking       |
    | VADUserStarted ↓, UserStarted ↓         | stops it, and the count starts over: prompt    |
    | VADUserStopped ↓ (no turn)              | starts it from zero                            |
    | UserStopped ↓                           | starts it, unless a reply is due               |
    | LLMContext ↓, TTSSpeak ↓                | a reply is due: stopped until the bot speaks   |
    | Error ↑ while a reply is due            | none is coming: starts it                      |
    | `prompt_secs` of silence                | TTSSpeak(prompt) ↓                             |
    | `goodbye_secs` more after it played     | TTSSpeak(goodbye) ↓, EndWorker ↓                 |
    | EndWorker ↓, End, Cancel                  | stops it for good                              |

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
        self._prompted = False
        self._over = False
        self._clock = CallerSilenceClock(timeout=prompt_secs, answers_every_turn=answers_every_turn)
        self._clock.add_event_handler("on_user_turn_idle", self._on_silence)

    async def setup(self, setup: FrameProcessorSetup):
        """Give the clock its task manager."""
        await super().setup(setup)
        await self._clock.setup(setup)

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Feed the clock, pass every frame on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, (EndFrame, CancelFrame, EndWorkerFrame)):
            await self._stop()
        elif isinstance(frame, (VADUserStartedSpeakingFrame, UserStartedSpeakingFrame)):
            self._prompted = False
            self._clock.set_timeout(self._prompt_secs)
        if not self._over:
            await self._clock.process_frame(frame)
            if isinstance(frame, StartFrame):
                await self._clock.wait_for_user()
        await self.push_frame(frame, direction)

    async def _on_silence(self, _clock: CallerSilenceClock) -> None:
        if self._over or self._lifecycle.ending:
            return
        if not self._prompted:
            self._prompted = True
            logger.info(f"the caller has been silent {self._prompt_secs:g} s: prompting")
            self._clock.set_timeout(self._goodbye_secs)
            await self._clock.reply_due()
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
        await self._clock.stop()

    async def cleanup(self):
        """Stop the clock."""
        await super().cleanup()
        await self._clock.cleanup()
