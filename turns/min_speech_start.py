"""A user-turn start strategy that lets a cough or an "mm-hm" pass while the bot talks."""

from loguru import logger
from pipecat.frames.frames import (
    Frame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_start.base_user_turn_start_strategy import BaseUserTurnStartStrategy

from turns.speech_over_bot import SpeechOverBot


class MinSpeechUserTurnStartStrategy(SpeechOverBot, BaseUserTurnStartStrategy):
    """Starts the caller's turn on VAD speech; while the bot is audible, only after more.

    While the bot is audible, the VAD must report `min_speech_secs` of speech with no stop
    in between.

    | frames (upstream view)                           | turn starts?                       |
    |--------------------------------------------------|------------------------------------|
    | VADUserStarted, bot silent                       | at once                            |
    | BotStarted, VADUserStarted, … min_speech_secs    | yes, when the time is up           |
    | BotStarted, VADUserStarted, VADUserStopped early | no: a cough or backchannel         |
    """

    def __init__(self, *, min_speech_secs: float, **kwargs):
        """Ask for `min_speech_secs` of speech before cutting the bot off."""
        super().__init__(**kwargs)
        self._min_speech_secs = min_speech_secs

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        """Track the bot and the caller's speech; start the turn when it is real."""
        self._track_bot(frame)
        if isinstance(frame, VADUserStartedSpeakingFrame):
            if not self._bot_speaking or self._min_speech_secs <= 0:
                await self.trigger_user_turn_started()
                return ProcessFrameResult.STOP
            await self._after(self._min_speech_secs, self.trigger_user_turn_started)
        elif isinstance(frame, VADUserStoppedSpeakingFrame) and self._timer:
            logger.debug(f"{self}: speech too short to interrupt the bot; ignored")
            await self._cancel_timer()
        return ProcessFrameResult.CONTINUE

    async def handle_user_turn_started(self):
        """The turn has started (by any strategy): forget a pending start."""
        await super().handle_user_turn_started()
        await self._cancel_timer()
