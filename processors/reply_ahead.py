"""A speculative reply runs through the LLM and the TTS while the caller's turn is still open."""

from collections.abc import Awaitable, Callable

from loguru import logger
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    Frame,
    InterruptionFrame,
    LLMContextFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import FunctionCallParams

from turns.frames import ReplyWithdrawnFrame, SpeculativeReplyFrame

ToolHandler = Callable[[FunctionCallParams], Awaitable[None]]


class ReplyAhead(FrameProcessor):
    """Lets a speculative reply be synthesized ahead; `ReplyHold` after the TTS holds it.

    Sits just before the LLM. pipecat's LLM service would hold a speculative response itself
    (its `SpeculationGate`), before the TTS has seen a word of it; here the LLM answers it as
    an ordinary context, so its first sentence is audio by the time the turn ends, and the
    hold after the TTS releases it the moment the turn ends on those words. A withdrawal
    becomes a `ReplyWithdrawnFrame`: an interruption that stops the LLM stream and the TTS
    context and ends at the hold. Tools run only for a turn that ended (`guard`): a
    speculative reply that wants one is withdrawn, and the turn's end asks again.

    | in                                        | out                                        |
    |-------------------------------------------|--------------------------------------------|
    | LLMContext ↓, speculative                 | SpeculativeReply ↓, LLMContext ↓ (ordinary)|
    | UserStoppedSpeaking ↓                     | same ↓ (the turn ended: nothing to hold)   |
    | EagerEndOfTurnCancel ↓, speculating       | ReplyWithdrawn ↓, same ↓                   |
    | a guarded tool call, speculating          | ReplyWithdrawn ↓, EagerEndOfTurnCancel ↑   |
    | anything else                             | unchanged                                  |
    """

    def __init__(self, **kwargs):
        """Nothing speculative in flight yet."""
        super().__init__(**kwargs)
        self._speculating = False  # the LLM's current request answers a turn not yet over

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Turn a speculative context into an ordinary one behind a hold marker."""
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame) and frame.speculation:
            self._speculating = True
            await self.push_frame(SpeculativeReplyFrame())
            frame = LLMContextFrame(context=frame.context)
        elif isinstance(frame, EagerEndOfTurnCancelFrame) and self._speculating:
            await self._withdraw()
        elif isinstance(frame, (LLMContextFrame, UserStoppedSpeakingFrame, InterruptionFrame)):
            self._speculating = False
        await self.push_frame(frame, direction)

    def guard(self, handler: ToolHandler) -> ToolHandler:
        """`handler`, run only when the reply asking for it answers a turn that ended."""

        async def run_unless_speculating(params: FunctionCallParams) -> None:
            if not self._speculating:
                await handler(params)
                return
            logger.debug(f"{self}: the speculative reply wants {params.function_name}")
            await self.push_frame(EagerEndOfTurnCancelFrame(), FrameDirection.UPSTREAM)
            await self._withdraw(refused=params.tool_call_id)

        return run_unless_speculating

    async def _withdraw(self, refused: str | None = None) -> None:
        self._speculating = False
        withdrawn = ReplyWithdrawnFrame(refused_tool_calls=frozenset({refused} - {None}))
        await self.push_frame(withdrawn)
