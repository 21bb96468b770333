"""The caller's keys: an entry becomes one turn for the LLM, a shortcut acts at once."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputDTMFFrame,
    LLMContextFrame,
    LLMContextUserTurnFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.utils.time import time_now_iso8601

from telephony.lifecycle import CallLifecycle
from turns.frames import RepeatReplyFrame


@dataclass(frozen=True)
class KeyActionParams:
    """What a shortcut's action gets: the key pressed, and how to push frames down the call."""

    key: str
    push_frame: Callable[[Frame], Awaitable[None]]


KeyAction = Callable[[KeyActionParams], Awaitable[None]]


async def repeat_last_reply(params: KeyActionParams) -> None:
    """The `repeat` action: the bot says its last reply again (`ReplyRepeater` knows it)."""
    await params.push_frame(RepeatReplyFrame())


class Keypad(FrameProcessor):
    """Collects the caller's key presses into entries, each committed as one caller turn.

    Sits after the user aggregator, where the caller's audio no longer flows (no cost per
    20 ms of audio); so, as the aggregator does for speech, it writes the turn into `context`
    itself and pushes the context on to the LLM. The first key of an entry is a barge-in at
    once: no minimum of speech, as a voice needs, since a key is never a cough.

    | in                                           | out                                       |
    |----------------------------------------------|-------------------------------------------|
    | InputDTMF ↓, first key of an entry           | Interruption ↕, InputDTMF ↓               |
    | InputDTMF ↓, first key, a shortcut           | Interruption ↕, InputDTMF ↓, its action's |
    |                                              |   frames ↓ (`repeat`: RepeatReply ↓)      |
    | InputDTMF ↓ `end_key`, or the `max_digits`th | InputDTMF ↓, then the entry: LLMContext-  |
    |                                              |   UserTurn ↕, LLMContext ↓ (the context   |
    |                                              |   ends "The caller pressed 4 2 1 7 #")    |
    | `pause_secs` with no key, entry open         | the entry, as above                       |
    | InputDTMF ↓ while the call is ending         | nothing                                   |
    | End, Cancel                                  | same; an open entry is dropped            |
    """

    def __init__(
        self,
        context: LLMContext,
        lifecycle: CallLifecycle,
        *,
        end_key: str = "#",
        max_digits: int = 0,
        pause_secs: float = 1.5,
        shortcuts: dict[str, str] | None = None,
        actions: dict[str, KeyAction] | None = None,
        **kwargs,
    ):
        """Commit entries to `context`; `shortcuts` map a key to an action name in `actions`."""
        super().__init__(**kwargs)
        if pause_secs <= 0:
            raise ValueError(f"Keypad needs a positive pause_secs (got {pause_secs})")
        self._context = context
        self._lifecycle = lifecycle
        self._end_key, self._max_digits, self._pause_secs = end_key, max_digits, pause_secs
        self._shortcuts = dict(shortcuts or {})
        self.actions: dict[str, KeyAction] = {"repeat": repeat_last_reply, **(actions or {})}
        self._entry: list[str] = []
        self._pause: asyncio.Task | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Collect keys; drop an open entry when the pipeline ends."""
        await super().process_frame(frame, direction)
        if isinstance(frame, (EndFrame, CancelFrame)):
            await self._drop_entry()
        elif isinstance(frame, InputDTMFFrame) and self._lifecycle.ending:
            return  # the caller is muted while the call ends: keys too
        elif isinstance(frame, InputDTMFFrame):
            await self._pressed(frame)
            return
        await self.push_frame(frame, direction)

    async def cleanup(self):
        """Stop the pause timer."""
        await super().cleanup()
        await self._stop_pause()

    async def _pressed(self, frame: InputDTMFFrame) -> None:
        key = frame.button.value
        first = not self._entry
        if first:
            await self.broadcast_interruption()
        await self.push_frame(frame)
        if first and key in self._shortcuts:
            await self._act(key, self._shortcuts[key])
            return
        await self._stop_pause()
        self._entry.append(key)
        digits = len(self._entry) - (key == self._end_key)
        if key == self._end_key or digits == self._max_digits:
            await self._commit()
        else:
            self._pause = self.create_task(self._commit_after_pause(), "keypad-pause")

    async def _act(self, key: str, name: str) -> None:
        action = self.actions.get(name)
        if action is None:
            logger.error(f"{self}: key {key!r} is the shortcut for {name!r}, which has no handler")
            return
        logger.info(f"the caller pressed {key}: {name}")
        await action(KeyActionParams(key=key, push_frame=self.push_frame))

    async def _commit_after_pause(self) -> None:
        await asyncio.sleep(self._pause_secs)
        self._pause = None  # committing must not cancel this task
        await self._commit()

    async def _commit(self) -> None:
        """The entry as one caller turn: into the context, and the LLM answers it."""
        await self._stop_pause()
        text = "The caller pressed " + " ".join(self._entry)
        self._entry = []
        logger.info(f"keypad entry: {text!r}")
        self._context.add_message({"role": "user", "content": text})
        await self.broadcast_frame(LLMContextUserTurnFrame, text=text, timestamp=time_now_iso8601())
        await self.push_frame(LLMContextFrame(context=self._context))

    async def _drop_entry(self) -> None:
        await self._stop_pause()
        if self._entry:
            logger.info(f"the call ended before the keys {''.join(self._entry)!r} were entered")
            self._entry = []

    async def _stop_pause(self) -> None:
        if self._pause:
            task, self._pause = self._pause, None
            await self.cancel_task(task)
