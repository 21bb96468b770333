"""The caller's ear in the LLM context: an interrupted reply becomes the words they heard."""

import re

from loguru import logger
from pipecat.frames.frames import Frame, LLMMessagesTransformFrame
from pipecat.processors.aggregators.llm_context import LLMContextMessage
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from telephony.frames import ReplyCutFrame

INTERRUPTED_NOTE = "[The caller interrupted here; they heard only the words above.]"
NOTHING_HEARD_NOTE = "[The caller interrupted before hearing any of this reply.]"


class HeardContext(FrameProcessor):
    """Writes what the caller heard of a cut reply into the context, through the frame path.

    Sits between the output transport and the assistant aggregator. The transport passes the
    reply's text on as it is heard, and the aggregator commits what it has when the
    interruption reaches it; the transport then says exactly what was heard, which becomes
    the reply's assistant message, with a note that the caller cut in.

    | in              | out                                                                   |
    |-----------------|-----------------------------------------------------------------------|
    | ReplyCut ↓      | ReplyCut ↓, then LLMMessagesTransform ↓ (uninterruptible): the reply's |
    |                 | assistant message now holds the heard words and the note (or one is   |
    |                 | added, if the aggregator had committed none of it)                    |
    | anything else   | unchanged                                                             |
    """

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Follow a cut reply with the edit that makes the context say what was heard."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, ReplyCutFrame) and direction == FrameDirection.DOWNSTREAM:
            edit = LLMMessagesTransformFrame(transform=lambda m: heard_reply(m, frame))
            edit.interruptible = False  # a second barge-in right away must not lose it
            await self.push_frame(edit)


def heard_reply(messages: list[LLMContextMessage], cut: ReplyCutFrame) -> list[LLMContextMessage]:
    """`messages` with the cut reply's assistant message saying what the caller heard.

    The reply is the assistant's since the caller's last turn (the turn that cut it in is
    not in the context yet); if the aggregator committed none of it, the message is added.
    """
    content = f"{cut.heard}… {INTERRUPTED_NOTE}" if cut.heard else NOTHING_HEARD_NOTE
    since_caller = len(messages)
    while since_caller and messages[since_caller - 1].get("role") != "user":
        since_caller -= 1
    for message in reversed(messages[since_caller:]):
        text = message.get("content")
        if message.get("role") == "assistant" and isinstance(text, str):
            if same_reply(text, cut.spoken):
                message["content"] = content
                logger.debug(f"the context now says the caller heard {cut.heard!r}")
                return messages
    return [*messages, {"role": "assistant", "content": content}]


def same_reply(message: str, spoken: str) -> bool:
    """Whether a context message holds (a prefix of) the spoken reply."""
    a, b = _normal(message), _normal(spoken)
    return bool(a) and (b.startswith(a[:40]) or a.startswith(b[:40]))


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
