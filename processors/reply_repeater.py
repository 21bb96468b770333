"""Knows the bot's last reply as it was said, and says it again when the caller asks."""

from loguru import logger
from pipecat.frames.frames import (
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSSpeakFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from turns.frames import (
    RepeatReplyFrame,
    ReplyConfirmedFrame,
    ReplyWithdrawnFrame,
    SpeculativeReplyFrame,
)
from turns.held_reply import HeldReply


class ReplyRepeater(FrameProcessor):
    """Says the last reply again on a `RepeatReplyFrame`, without asking the LLM.

    Sits between the LLM and the TTS, so it sees each reply whole, as the LLM wrote it (the
    context holds only what the caller heard of it), and lines spoken as they are
    (`TTSSpeakFrame`: apologies, prompts, a repeat). A speculative reply counts once the
    caller's turn has ended on it; a withdrawn one never. `greeting`: the last reply before any.

    | in                                                 | out                                |
    |----------------------------------------------------|------------------------------------|
    | LLMFullResponseStart, LLMText…, LLMFullResponseEnd | same; the text is the last reply   |
    | TTSSpeak ↓                                         | same; its text is the last reply   |
    | Interruption ↓ mid-reply                           | same; the text so far is the last  |
    | SpeculativeReply ↓, then a reply                   | same; last only at ReplyConfirmed ↓|
    | ReplyWithdrawn ↓                                   | same; the speculative reply is not |
    | RepeatReply ↓                                      | TTSSpeak(last reply) ↓             |
    """

    def __init__(self, greeting: str = "", **kwargs):
        """Nothing said yet but the `greeting`."""
        super().__init__(**kwargs)
        self._last = greeting
        self._reply = HeldReply()
        self._speculative = False  # the reply streaming answers a turn not yet over
        self._streaming: list[str] | None = None  # the reply the LLM is writing
        self._held = ""  # a speculative reply written whole, waiting for its turn's end

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Follow the replies going down; answer a repeat request."""
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            self._follow(frame)
        if isinstance(frame, RepeatReplyFrame):
            await self._repeat()
            return
        await self.push_frame(frame, direction)

    def _follow(self, frame: Frame) -> None:
        if isinstance(frame, SpeculativeReplyFrame):
            self._reply.mark()
        elif isinstance(frame, LLMFullResponseStartFrame):
            self._streaming, self._speculative = [], self._reply.starts_held()
        elif isinstance(frame, LLMTextFrame) and self._streaming is not None:
            self._streaming.append(frame.text)
        elif isinstance(frame, LLMFullResponseEndFrame):
            self._reply_written()
        elif isinstance(frame, ReplyWithdrawnFrame):
            self._reply.forget()
            self._streaming, self._held, self._speculative = None, "", False
        elif isinstance(frame, InterruptionFrame):
            self._reply.forget()
            self._reply_written()
            self._held = ""
        elif isinstance(frame, ReplyConfirmedFrame):  # the turn ended on it: it is heard
            self._reply.confirm(holding=self._speculative or bool(self._held))
            self._last = self._held or self._last
            self._held, self._speculative = "", False
        elif isinstance(frame, TTSSpeakFrame):
            self._last = frame.text

    def _reply_written(self) -> None:
        """The reply the LLM was writing is finished (or cut): the last reply, once it counts."""
        text = "".join(self._streaming or []).strip()
        self._streaming = None
        if not text:
            return
        if self._speculative:
            self._held = text
        else:
            self._last = text

    async def _repeat(self) -> None:
        if not self._last:
            logger.info(f"{self}: asked to repeat, but nothing was said yet")
            return
        logger.info(f"repeating the last reply: {self._last!r}")
        await self.push_frame(TTSSpeakFrame(self._last))
