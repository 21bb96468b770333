"""A user-turn start strategy that lets a cough or an "mm-hm" pass while the bot talks."""

import asyncio

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_start.base_user_turn_start_strategy import BaseUserTurnStartStrategy


class MinSpeechUserTurnStartStrategy(BaseUserTurnStartStrategy):
    """Starts the caller's turn on VAD speech; while the bot is audible, only after more.

    While the bot is audible, the VAD must report `min_speech_secs` of speech with no stop
    in between.

    "Audible" follows BotStarted/BotStoppedSpeaking as they travel upstream; the playback
    tracker holds the latter until Twilio has played the reply out.

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
        self._bot_speaking = False
        self._timer: asyncio.Task | None = None

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        """Track the bot and the caller's speech; start the turn when it is real."""
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            if not self._bot_speaking or self._min_speech_secs <= 0:
                await self.trigger_user_turn_started()
                return ProcessFrameResult.STOP
            await self._cancel_timer()
            self._timer = self.create_task(self._start_after_min_speech())
        elif isinstance(frame, VADUserStoppedSpeakingFrame) and self._timer:
            logger.debug(f"{self}: speech too short to interrupt the bot; ignored")
            await self._cancel_timer()
        return ProcessFrameResult.CONTINUE

    async def _start_after_min_speech(self) -> None:
        await asyncio.sleep(self._min_speech_secs)
        self._timer = None
        await self.trigger_user_turn_started()

    async def _cancel_timer(self) -> None:
        if self._timer:
            timer, self._timer = self._timer, None
            await self.cancel_task(timer)

    async def handle_user_turn_started(self):
        """The turn has started (by any strategy): forget a pending start."""
        await super().handle_user_turn_started()
        await self._cancel_timer()

    async def cleanup(self):
        """Stop the timer."""
        await super().cleanup()
        await self._cancel_timer()
