"""A speculative reply's audio waits after the TTS until the caller's turn has ended on it."""

from loguru import logger
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    FunctionCallCancelFrame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InterruptionFrame,
    LLMFullResponseStartFrame,
    SystemFrame,
    TTSAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from turns.frames import ReplyConfirmedFrame, ReplyWithdrawnFrame, SpeculativeReplyFrame
from turns.held_reply import HeldReply

ToolCallFrame = FunctionCallInProgressFrame | FunctionCallResultFrame | FunctionCallCancelFrame


class ReplyHold(FrameProcessor):
    """Holds a speculative reply, already synthesized, until the turn it answers ends.

    Sits just after the TTS (`ReplyAhead` before the LLM marks what to hold, and says when the
    turn ended on it). From the marked response's start, every frame but system frames waits
    here in order; the confirmation releases them at once, a withdrawal drops them. A
    confirmation that overtakes the marker (`HeldReply`) lets that reply pass unheld. Nothing
    of a withdrawn reply goes further, not even the tool calls it asked for.

    | in                                           | out                                 |
    |----------------------------------------------|-------------------------------------|
    | SpeculativeReply ↓                           | nothing; the next response is held  |
    | LLMFullResponseStart ↓, marked; what follows | held                                |
    | ReplyConfirmed ↓                             | nothing; everything held goes on    |
    | ReplyWithdrawn ↓                             | nothing; what was held is dropped   |
    | tool call frames of a refused call ↓         | nothing                             |
    | Interruption ↓ (a barge-in), End ↓           | same ↓; what was held is dropped    |
    | anything else                                | unchanged                           |
    """

    def __init__(self, **kwargs):
        """Nothing held."""
        super().__init__(**kwargs)
        self._reply = HeldReply()
        self._held: list[Frame] | None = None  # None: not holding
        self._refused: set[str] = set()

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Hold, release or drop the speculative reply; pass everything else."""
        await super().process_frame(frame, direction)
        if direction == FrameDirection.UPSTREAM:
            await self.push_frame(frame, direction)
        elif isinstance(frame, SpeculativeReplyFrame):
            self._reply.mark()
        elif isinstance(frame, ReplyConfirmedFrame):
            self._reply.confirm(holding=self._held is not None)
            await self._release()
        elif isinstance(frame, ReplyWithdrawnFrame):
            self._refused |= frame.refused_tool_calls
            self._drop("withdrawn")
        elif isinstance(frame, ToolCallFrame) and frame.tool_call_id in self._refused:
            pass  # a tool call a speculative reply asked for: never run
        elif isinstance(frame, (InterruptionFrame, EndFrame)):
            self._drop("interrupted" if isinstance(frame, InterruptionFrame) else "unjudged")
            await self.push_frame(frame)
        elif isinstance(frame, SystemFrame):
            await self.push_frame(frame)
        else:
            await self._hold_or_pass(frame)

    async def _release(self) -> None:
        if self._held is None:
            return
        held, self._held = self._held, None
        ms = sum(_milliseconds(f) for f in held if isinstance(f, TTSAudioRawFrame))
        logger.debug(f"{self}: the turn ended on it: releasing the reply ({ms:.0f} ms of audio)")
        for kept in held:
            await self.push_frame(kept)

    async def _hold_or_pass(self, frame: Frame) -> None:
        if isinstance(frame, LLMFullResponseStartFrame) and self._reply.starts_held():
            self._held = []
        if self._held is None:
            await self.push_frame(frame)
        else:
            self._held.append(frame)

    def _drop(self, reason: str) -> None:
        if self._held is not None:
            logger.debug(f"{self}: speculative reply {reason}: {len(self._held)} frames dropped")
        self._reply.forget()
        self._held = None


def _milliseconds(audio: TTSAudioRawFrame) -> float:
    return len(audio.audio) * 1000 / (2 * audio.sample_rate * audio.num_channels)
