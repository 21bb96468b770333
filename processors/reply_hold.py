"""A speculative reply's audio waits after the TTS until the caller's turn has ended."""

from loguru import logger
from pipecat.frames.frames import (
    Frame,
    FunctionCallCancelFrame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InterruptionFrame,
    LLMFullResponseStartFrame,
    SystemFrame,
    TTSAudioRawFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from turns.frames import ReplyWithdrawnFrame, SpeculativeReplyFrame

ToolCallFrame = FunctionCallInProgressFrame | FunctionCallResultFrame | FunctionCallCancelFrame


class ReplyHold(FrameProcessor):
    """Holds a speculative reply, already synthesized, until the turn it answers ends.

    Sits just after the TTS (`ReplyAhead` before the LLM marks what to hold). From the
    marked response's start, every frame but system frames waits here in order; the turn's
    end (`UserStoppedSpeakingFrame`) releases them at once, a withdrawal drops them. A marker
    that arrives after the turn already ended holds nothing: its reply answers a turn that is
    over. Nothing of a withdrawn reply goes further, not even the tool calls it asked for.

    | in                                           | out                                 |
    |----------------------------------------------|-------------------------------------|
    | SpeculativeReply ↓ (turn open)               | nothing; the next response is held  |
    | LLMFullResponseStart ↓, marked; what follows | held                                |
    | UserStoppedSpeaking ↓                        | same ↓, then everything held        |
    | ReplyWithdrawn ↓                             | nothing; what was held is dropped   |
    | tool call frames of a refused call ↓         | nothing                             |
    | Interruption ↓ (a barge-in)                  | same ↓; what was held is dropped    |
    | anything else                                | unchanged                           |
    """

    def __init__(self, **kwargs):
        """Nothing held; no turn open."""
        super().__init__(**kwargs)
        self._marked = False  # the next response is speculative
        self._held: list[Frame] | None = None  # None: not holding
        self._turn_open = False
        self._refused: set[str] = set()

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Hold, release or drop the speculative reply; pass everything else."""
        await super().process_frame(frame, direction)
        if direction == FrameDirection.UPSTREAM:
            await self.push_frame(frame, direction)
        elif isinstance(frame, SpeculativeReplyFrame):
            self._marked = self._turn_open
        elif isinstance(frame, ReplyWithdrawnFrame):
            self._refused |= frame.refused_tool_calls
            self._drop("withdrawn")
        elif isinstance(frame, ToolCallFrame) and frame.tool_call_id in self._refused:
            pass  # a tool call a speculative reply asked for: never run
        elif isinstance(frame, SystemFrame):
            await self._on_system(frame)
        else:
            await self._hold_or_pass(frame)

    async def _on_system(self, frame: SystemFrame) -> None:
        if isinstance(frame, UserStartedSpeakingFrame):
            self._turn_open = True
        elif isinstance(frame, UserStoppedSpeakingFrame):
            self._turn_open = self._marked = False
        elif isinstance(frame, InterruptionFrame):
            self._drop("interrupted")
        await self.push_frame(frame)
        if isinstance(frame, UserStoppedSpeakingFrame) and self._held is not None:
            held, self._held = self._held, None
            ms = sum(_milliseconds(f) for f in held if isinstance(f, TTSAudioRawFrame))
            logger.debug(
                f"{self}: the turn ended: releasing the reply ({ms:.0f} ms of audio ready)"
            )
            for kept in held:
                await self.push_frame(kept)

    async def _hold_or_pass(self, frame: Frame) -> None:
        if isinstance(frame, LLMFullResponseStartFrame) and self._marked:
            self._marked, self._held = False, []
        if self._held is None:
            await self.push_frame(frame)
        else:
            self._held.append(frame)

    def _drop(self, reason: str) -> None:
        if self._held is not None:
            logger.debug(f"{self}: speculative reply {reason}: {len(self._held)} frames dropped")
        self._marked, self._held = False, None


def _milliseconds(audio: TTSAudioRawFrame) -> float:
    return len(audio.audio) * 1000 / (2 * audio.sample_rate * audio.num_channels)
