"""LLMFailureApology: one spoken apology for a turn the LLM failed but can recover from."""

from pipecat.frames.frames import (
    ErrorFrame,
    LLMContextFrame,
    TTSSpeakFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection
from pipecat.tests.utils import run_test
from pipecat.utils.errors import ErrorCategory

from processors.llm_failure_apology import LLMFailureApology
from services.openai_llm import ClosingOpenAILLMService

APOLOGY = "Sorry, I had a problem on my end. Could you say that again?"


def llm() -> ClosingOpenAILLMService:
    return ClosingOpenAILLMService(api_key="k", base_url="http://127.0.0.1:9/v1")


def error(source, category=ErrorCategory.SERVER) -> ErrorFrame:
    return ErrorFrame(error="Error during completion: boom", processor=source, category=category)


async def run(apology: LLMFailureApology, *frames) -> tuple[list, list]:
    """Send `frames` (frame, direction) through; frames in both directions come out."""
    down, up = [], []
    for frame, direction in frames:
        got_down, got_up = await run_test(
            apology, frames_to_send=[frame], frames_to_send_direction=direction
        )
        down += got_down
        up += got_up
    return down, up


async def test_a_transient_llm_error_passes_on_and_is_answered_with_the_apology():
    service = llm()
    apology = LLMFailureApology(service, APOLOGY)
    down, up = await run_test(
        apology,
        frames_to_send=[error(service)],
        frames_to_send_direction=FrameDirection.UPSTREAM,
        expected_up_frames=[ErrorFrame],
        expected_down_frames=[TTSSpeakFrame],
    )
    assert down[0].text == APOLOGY and down[0].append_to_context
    await service._client.close()


async def test_only_the_first_error_of_a_turn_is_answered():
    service = llm()
    apology = LLMFailureApology(service, APOLOGY)
    context = LLMContext()
    frames = [
        (LLMContextFrame(context), FrameDirection.DOWNSTREAM),
        (error(service), FrameDirection.UPSTREAM),
        (error(service), FrameDirection.UPSTREAM),
        (LLMContextFrame(context), FrameDirection.DOWNSTREAM),
        (error(service), FrameDirection.UPSTREAM),
    ]
    down, up = await run(apology, *frames)
    spoken = [f for f in down if isinstance(f, TTSSpeakFrame)]
    assert len(spoken) == 2, "one apology per failed turn"
    assert sum(isinstance(f, ErrorFrame) for f in up) == 3, "every error still goes upstream"
    await service._client.close()


async def test_an_unusable_llm_another_processor_or_a_tool_failure_gets_no_apology():
    service, other = llm(), llm()
    apology = LLMFailureApology(service, APOLOGY)
    frames = [
        (error(other), FrameDirection.UPSTREAM),
        (error(service, ErrorCategory.APPLICATION), FrameDirection.UPSTREAM),
    ]
    down, _ = await run(apology, *frames)
    await service.set_usable(False)  # e.g. a rejected API key: the call-level policy answers
    more, _ = await run(apology, (error(service), FrameDirection.UPSTREAM))
    assert not [f for f in down + more if isinstance(f, TTSSpeakFrame)]
    await service._client.close()
    await other._client.close()
