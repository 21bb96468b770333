"""What the barge-in start strategies share: is the bot audible, and a timer for speech over it."""

import asyncio
from collections.abc import Awaitable, Callable

from pipecat.frames.frames import BotStartedSpeakingFrame, BotStoppedSpeakingFrame, Frame


class SpeechOverBot:
    """Mixin for a user-turn start strategy.

    "Audible" follows BotStarted/BotStoppedSpeaking as they travel upstream; the playback
    tracker holds the latter until Twilio has played the reply out. One timer at a time
    runs `then` once the caller has spoken for a while (the strategy cancels it when the
    VAD stops).
    """

    _bot_speaking = False
    _timer: asyncio.Task | None = None

    def _track_bot(self, frame: Frame) -> None:
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False

    async def _after(self, seconds: float, then: Callable[[], Awaitable[None]]) -> None:
        await self._cancel_timer()
        self._timer = self.create_task(self._wait(seconds, then))  # type: ignore[attr-defined]

    async def _wait(self, seconds: float, then: Callable[[], Awaitable[None]]) -> None:
        await asyncio.sleep(seconds)
        self._timer = None
        await then()

    async def _cancel_timer(self) -> None:
        if self._timer:
            timer, self._timer = self._timer, None
            await self.cancel_task(timer)  # type: ignore[attr-defined]

    async def cleanup(self):
        """Stop the timer."""
        await super().cleanup()  # type: ignore[misc]
        await self._cancel_timer()
