"""A provider that can no longer serve ends the call: one clear error, an apology, a hang-up.

pipecat marks a service unusable when its error is permanent (authentication, authorization,
an invalid request) or it has failed too often in a row to keep trying, stops giving it work,
and by default lets the call run on: a caller who is not transcribed, or never answered,
talking to dead air. Here the first such error of a call logs what to fix, the bot says its
`unavailable` line (unless the failed service is the one that would say it) and hangs up.
"""

from typing import TYPE_CHECKING

from loguru import logger
from pipecat.frames.frames import EndWorkerFrame, ErrorFrame
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.llm_service import LLMService
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService
from pipecat.utils.errors import ErrorCategory, extract_http_status_code

from pipelines.declaration import STAGE_NAMES, Declaration

if TYPE_CHECKING:
    from server.call import Call


async def end_call_if_unusable(call: "Call", frame: ErrorFrame, declaration: Declaration) -> None:
    """If `frame` made its processor unusable, log what to fix and end the call (once)."""
    processor = frame.processor
    if processor is None or processor.is_usable or call.lifecycle.ending or call.worker is None:
        return
    section = _section_of(processor, declaration)
    failure, fix = describe(frame, section, declaration)
    if section == "tts":  # the voice that would apologise is the one that failed
        logger.error(f"{failure}: {fix}; hanging up without an apology")
        call.lifecycle.end(failure)
        await call.worker.queue_frame(EndWorkerFrame(reason=failure))
    else:
        logger.error(f"{failure}: {fix}; apologising and hanging up")
        await call.say_and_end(declaration.bot.unavailable, failure)


def describe(frame: ErrorFrame, section: str | None, declaration: Declaration) -> tuple[str, str]:
    """What failed and what to fix: ("Deepgram STT refused the API key (HTTP 401)", "check …").

    Never the key itself, nor the provider's message for a refusal (it may echo headers).
    """
    who, keys, options = f"{frame.processor}", "the provider's credentials", "its options"
    stage = declaration.stages.get(section) if section else None
    if stage and section:
        who = f"{stage.provider.summary.split()[0]} {STAGE_NAMES[section]}"
        keys = " and ".join(stage.needs()) or keys
        options = f"the [{section}] options in {declaration.path.name}"
    status = extract_http_status_code(frame.exception) if frame.exception else None
    http = f" (HTTP {status})" if status else ""
    if frame.category is ErrorCategory.AUTHENTICATION:
        return f"{who} refused the API key{http}", f"check {keys}"
    if frame.category is ErrorCategory.AUTHORIZATION:
        return f"{who} refused access{http}", f"check that {keys} may use {options}"
    if frame.category is ErrorCategory.INVALID_REQUEST:
        return f"{who} rejected the request{http}", f"check {options}"
    return f"{who} can no longer be used{http}", f"{frame.error[:200]}"


def _section_of(processor: FrameProcessor, declaration: Declaration) -> str | None:
    if isinstance(processor, STTService):
        return "stt"
    if isinstance(processor, TTSService):
        return "tts"
    if isinstance(processor, LLMService):
        return "speech_to_speech" if declaration.speech_to_speech else "llm"
    return None
