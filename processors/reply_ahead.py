"""A speculative reply runs through the LLM and the TTS while the caller's turn is still open."""

import asyncio
from collections.abc import Awaitable, Callable
from weakref import WeakKeyDictionary

from loguru import logger
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    Frame,
    InterruptionFrame,
    LLMContextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import FunctionCallParams

from turns.frames import (
    ReplyConfirmedFrame,
    ReplyWithdrawnFrame,
    SpeculationConfirmedFrame,
    SpeculationWithdrawnFrame,
    SpeculativeReplyFrame,
    StartSpeculationFrame,
)

# The stop strategy's verdict follows a turn's end within milliseconds; past this, it is lost.
VERDICT_SECS = 2.0

ToolHandler = Callable[[FunctionCallParams], Awaitable[None]]


class ReplyAhead(FrameProcessor):
    """Lets a speculative reply be synthesized ahead; `ReplyHold` after the TTS holds it.

    Sits just before the LLM. pipecat's LLM service would hold a speculative response itself
    (its `SpeculationGate`), before the TTS has seen a word of it; here the LLM answers it as
    an ordinary context, so its first sentence is audio by the time the turn ends, and the
    hold after the TTS releases it the moment the turn ends on those words. The stop
    strategy's verdicts come in order behind the context they judge (`SpeculationLedger`):
    a withdrawal becomes a `ReplyWithdrawnFrame` (an interruption that stops the LLM stream
    and the TTS context and ends at the hold), a confirmation a `ReplyConfirmedFrame` (the
    hold lets it play). Tools run only for a turn that ended (`guard`): a speculative reply
    that wants one while the caller's turn is open is withdrawn, and the turn's end asks
    again.

    | in                                        | out                                        |
    |-------------------------------------------|--------------------------------------------|
    | LLMContext ↓, speculative                 | SpeculativeReply ↓, LLMContext ↓ (ordinary)|
    | SpeculationWithdrawn ↓, speculating       | ReplyWithdrawn ↓                           |
    | LLMContext ↓, ordinary, speculating       | ReplyWithdrawn ↓, LLMContext ↓             |
    | SpeculationConfirmed ↓, speculating       | ReplyConfirmed ↓                           |
    | a guarded tool call, speculating,         | ReplyWithdrawn ↓, EagerEndOfTurnCancel ↑   |
    |   the turn open                           |                                            |
    | anything else                             | unchanged                                  |
    """

    def __init__(self, **kwargs):
        """Nothing speculative in flight yet."""
        super().__init__(**kwargs)
        # Each speculative context's verdict, so a tool call (which names its context) knows
        # which reply asks for it.
        self._verdicts: WeakKeyDictionary[LLMContext, _Verdict] = WeakKeyDictionary()
        self._current: _Verdict | None = None  # the speculation not judged yet
        self._turn_open = False

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Turn a speculative context into an ordinary one behind a hold marker."""
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame) and frame.speculation:
            self._current = self._verdicts[frame.context] = _Verdict()
            await self.push_frame(SpeculativeReplyFrame())
            frame = LLMContextFrame(context=frame.context)
        elif isinstance(frame, LLMContextFrame):
            # The turn ended on other words (or context): its verdict follows this context
            # through the user aggregator's queue, too late: its interruption would cut this.
            await self._withdraw()
        elif isinstance(frame, StartSpeculationFrame):
            return  # the stop strategy's own
        elif isinstance(frame, SpeculationWithdrawnFrame):
            await self._withdraw()
            return
        elif isinstance(frame, SpeculationConfirmedFrame):
            if self._judge(confirmed=True):
                await self.push_frame(ReplyConfirmedFrame())
            return
        elif isinstance(frame, InterruptionFrame):
            self._judge(confirmed=False)
        elif isinstance(frame, (UserStartedSpeakingFrame, UserStoppedSpeakingFrame)):
            self._turn_open = isinstance(frame, UserStartedSpeakingFrame)
        await self.push_frame(frame, direction)

    def guard(self, handler: ToolHandler) -> ToolHandler:
        """`handler`, run only when the reply asking for it answers a turn that ended."""

        async def run_unless_speculating(params: FunctionCallParams) -> None:
            verdict = self._verdicts.get(params.context)
            if verdict and verdict is self._current and self._turn_open:
                logger.debug(f"{self}: the speculative reply wants {params.function_name}")
                await self.push_frame(EagerEndOfTurnCancelFrame(), FrameDirection.UPSTREAM)
                await self._withdraw(refused=params.tool_call_id)
                return
            if verdict and not await verdict.confirmed():
                return  # a withdrawn reply's tools never run
            await handler(params)

        return run_unless_speculating

    def _judge(self, *, confirmed: bool) -> bool:
        """Settle the current speculation, if any."""
        current, self._current = self._current, None
        if current:
            current.settle(confirmed)
        return current is not None

    async def _withdraw(self, refused: str | None = None) -> None:
        if self._judge(confirmed=False):
            withdrawn = ReplyWithdrawnFrame(refused_tool_calls=frozenset({refused} - {None}))
            await self.push_frame(withdrawn)


class _Verdict:
    """A speculative reply's fate: confirmed by the turn's end, or withdrawn."""

    def __init__(self):
        self._settled = asyncio.Event()
        self._confirmed = False

    def settle(self, confirmed: bool) -> None:
        self._confirmed = confirmed
        self._settled.set()

    async def confirmed(self) -> bool:
        """Whether the reply plays, once known (the turn ended: it follows in milliseconds)."""
        try:
            await asyncio.wait_for(self._settled.wait(), VERDICT_SECS)
        except TimeoutError:
            logger.warning("no verdict on a speculative reply that wants a tool; running it")
            return True
        return self._confirmed
