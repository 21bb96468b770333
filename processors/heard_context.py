"""Before the LLM answers, make the context say what the caller actually heard."""

from loguru import logger
from pipecat.frames.frames import Frame, LLMContextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from processors.playback_state import Correction, Playback, same_reply


class HeardContext(FrameProcessor):
    """Rewrites an interrupted reply in the context to the words the caller heard.

    pipecat writes every sentence it sent to the TTS into the assistant message, heard or
    not, and may write it before or after the barge-in. This sits just before the LLM, so the
    fix lands after pipecat's write and before the next request, whatever the order.

    | in                                             | out                                   |
    |------------------------------------------------|---------------------------------------|
    | LLMContextFrame, after a barge-in              | same frame; the interrupted assistant |
    |                                                | message now holds the heard words and |
    |                                                | a note that the caller cut in         |
    | anything else                                  | unchanged                             |
    """

    def __init__(self, playback: Playback, **kwargs):
        """Correct from `playback`, the call's shared record."""
        super().__init__(**kwargs)
        self._playback = playback

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Apply a pending correction to the context about to be sent."""
        await super().process_frame(frame, direction)
        correction = self._playback.correction
        if isinstance(frame, LLMContextFrame) and correction:
            self._playback.correction = None
            _rewrite(frame.context, correction)
        await self.push_frame(frame, direction)


def _rewrite(context: LLMContext, correction: Correction) -> None:
    messages = context.get_messages()
    for message in reversed(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if message.get("role") == "assistant" and isinstance(content, str):
            if same_reply(content, correction.spoken):
                message["content"] = correction.message()
                logger.debug(f"context now says the caller heard {correction.heard!r}")
                return
            break
    user_turns = len(messages)
    while user_turns and messages[user_turns - 1].get("role") == "user":
        user_turns -= 1
    messages.insert(user_turns, {"role": "assistant", "content": correction.message()})
    context.set_messages(messages)
