"""A provider's proposed turn start (Deepgram Flux) that an "mm-hm" over the bot cannot confirm."""

from loguru import logger
from pipecat.frames.frames import (
    BotStoppedSpeakingFrame,
    Frame,
    InterimTranscriptionFrame,
    ProposedUserStartedSpeakingFrame,
    ProposedUserStoppedSpeakingFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_start import ExternalUserTurnStartStrategy

from turns.speech_over_bot import SpeechOverBot


class GuardedExternalUserTurnStartStrategy(SpeechOverBot, ExternalUserTurnStartStrategy):
    """Starts the turn a provider proposes; while the bot is audible, only once it is real.

    While the bot is audible, a proposal waits until the VAD has reported `min_speech_secs`
    of speech with no stop in between, or the provider has transcribed `min_words` words.
    The provider still ends the turn. A proposal that the provider's turn end overtakes is
    dropped with its transcript, so the LLM never hears it.

    | frames (upstream view)                                  | turn starts?                  |
    |---------------------------------------------------------|-------------------------------|
    | Proposed, bot silent                                    | at once                       |
    | BotStarted, VADStarted, Proposed, … min_speech_secs     | yes, when the time is up      |
    | BotStarted, Proposed, Interim with `min_words` words    | yes                           |
    | BotStarted, Proposed, BotStopped                        | yes: nothing left to protect  |
    | BotStarted, Proposed, VADStopped early, ProposedStopped | no; its transcript is dropped |
    """

    def __init__(self, *, min_speech_secs: float, min_words: int, **kwargs):
        """Ask for `min_speech_secs` of speech or `min_words` words before cutting the bot off."""
        super().__init__(**kwargs)
        self._min_speech_secs = min_speech_secs
        self._min_words = min_words
        self._proposed = False  # a proposal waits for proof
        self._proven = False  # the current VAD segment has lasted min_speech_secs
        self._turn_open = False

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        """Track the bot and the caller's speech; start a proposed turn when it is real."""
        self._track_bot(frame)
        if isinstance(frame, BotStoppedSpeakingFrame):
            await self._start_if_proposed()
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._proven = False
            await self._after(self._min_speech_secs, self._prove)
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            await self._cancel_timer()
        elif isinstance(frame, ProposedUserStartedSpeakingFrame):
            return await self._propose(frame)
        elif isinstance(frame, ProposedUserStoppedSpeakingFrame) and self._proposed:
            logger.debug(f"{self}: the provider's turn ended unconfirmed: not a barge-in")
            self._proposed = self._proven = False
        elif isinstance(frame, (InterimTranscriptionFrame, TranscriptionFrame)):
            return await self._transcribed(frame)
        else:
            return await super().process_frame(frame)
        return ProcessFrameResult.CONTINUE

    async def _propose(self, frame: ProposedUserStartedSpeakingFrame) -> ProcessFrameResult:
        if not self._bot_speaking or self._proven or self._min_speech_secs <= 0:
            return await super().process_frame(frame)
        logger.debug(f"{self}: turn proposed over the bot; waiting for more speech or words")
        self._proposed = True
        return ProcessFrameResult.STOP

    async def _transcribed(
        self, frame: InterimTranscriptionFrame | TranscriptionFrame
    ) -> ProcessFrameResult:
        if self._proposed and len(frame.text.split()) >= self._min_words:
            await self._start_if_proposed()
            return ProcessFrameResult.STOP
        if isinstance(frame, TranscriptionFrame) and not self._turn_open:
            # The aggregator has already taken in this transcript of a turn that never started.
            await self.trigger_reset_aggregation()
        return ProcessFrameResult.CONTINUE

    async def _prove(self) -> None:
        self._proven = True
        await self._start_if_proposed()

    async def _start_if_proposed(self) -> None:
        if self._proposed:
            self._proposed = False
            logger.debug(f"{self}: a barge-in: starting the proposed turn")
            await self.trigger_user_turn_started()

    async def handle_user_turn_started(self):
        """The turn has started (by any strategy): forget a pending proposal."""
        await super().handle_user_turn_started()
        self._proposed = self._proven = False
        self._turn_open = True
        await self._cancel_timer()

    async def handle_user_turn_stopped(self):
        """The turn has ended: a transcript from now on belongs to no turn until one starts."""
        await super().handle_user_turn_stopped()
        self._turn_open = False
