"""When the LLM fails a turn but can still answer the next one, the caller hears an apology."""

from loguru import logger
from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
    LLMContextFrame,
    TTSSpeakFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import LLMService
from pipecat.utils.errors import ErrorCategory


class LLMFailureApology(FrameProcessor):
    """Speaks `apology` once for a turn the LLM failed (a 5xx, a timeout, a cut stream).

    Sits just before the LLM, so it sees each turn's context go down and the LLM's errors come
    up. The apology goes down through the LLM, behind the failed turn's end, so the caller
    hears whatever part of the reply was spoken, then the apology, and the context records
    both. An LLM that is no longer usable (rejected key, unknown model) is left to the call's
    error policy; a failed function handler is not a failed turn (the LLM answers anyway).

    | in                                              | out                                    |
    |-------------------------------------------------|----------------------------------------|
    | LLMContextFrame ↓                               | same frame ↓ (a new turn)              |
    | ErrorFrame ↑ from `llm` answering speculatively | same frame ↑ (the turn's end asks      |
    | (no UserStoppedSpeakingFrame ↓ since)           | again)                                 |
    | ErrorFrame ↑ from `llm`, still usable, first    | same frame ↑, TTSSpeakFrame(apology) ↓ |
    | of this turn                                    |                                        |
    | ErrorFrame ↑ otherwise                          | same frame ↑                           |
    | anything else                                   | unchanged                              |
    """

    def __init__(self, llm: LLMService, apology: str, **kwargs):
        """Apologise with `apology` for failures of `llm`."""
        super().__init__(**kwargs)
        if not apology:
            raise ValueError("LLMFailureApology needs the apology to say")
        self._llm = llm
        self._apology = apology
        self._apologised = False
        self._speculating = False  # the LLM's request answers a turn not yet over

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Note each new turn; answer the LLM's first transient error of a turn."""
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            self._apologised, self._speculating = False, frame.speculation
        elif isinstance(frame, UserStoppedSpeakingFrame):
            self._speculating = False  # the turn is over: a reply in flight answers it
        await self.push_frame(frame, direction)
        if isinstance(frame, ErrorFrame) and self._failed_turn(frame):
            self._apologised = True
            logger.warning(f"the LLM failed the caller's turn ({frame.error}): apologising")
            await self.push_frame(TTSSpeakFrame(self._apology), FrameDirection.DOWNSTREAM)

    def _failed_turn(self, frame: ErrorFrame) -> bool:
        return (
            frame.processor is self._llm
            and self._llm.is_usable
            and frame.category != ErrorCategory.APPLICATION
            and not self._apologised
            and not self._speculating
        )
