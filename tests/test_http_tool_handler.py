"""The HTTP tool handler inside pipecat's LLM service: frames in, frames out.

The real OpenAI service against the chat stand-in (which asks for `check_availability`) and
the booking-system stand-in (which answers it, slowly or not).
"""

from itertools import chain

from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    FunctionCallCancelFrame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InterruptionFrame,
    LLMContextFrame,
    TTSSpeakFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test

from pipelines.provider import ProviderAccess
from pipelines.tools import HttpTool
from server.http_tool_handler import HttpToolHandler
from services.openai_llm import ClosingOpenAILLMService
from standins.booking_service import API_KEY_HEADER, BookingServiceStandIn
from standins.openai_chat import OpenAIChatStandIn
from standins.script import BOOKING_ARGUMENTS, CHECK_AVAILABILITY, checking_availability

FILLER = "One moment."
ACCESS = ProviderAccess({"BOOKING_SECRET": "s3cret", "BOOKING_KEY": "k3y"})


def declared(url: str) -> HttpTool:
    return HttpTool(
        name=CHECK_AVAILABILITY,
        description="Check a table.",
        url=f"{url}/availability/{{date}}",
        parameters={
            "properties": {name: {"type": "string"} for name in BOOKING_ARGUMENTS},
            "required": ["date"],
        },
        headers={API_KEY_HEADER: "BOOKING_KEY"},
        secret_env="BOOKING_SECRET",
        filler=FILLER,
        filler_after_secs=0.5,
    )


class ResultWatcher(FrameProcessor):
    """Passes frames on; notes when the tool's result has come by."""

    seen = False

    async def process_frame(self, frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        self.seen = self.seen or isinstance(frame, FunctionCallResultFrame)
        await self.push_frame(frame, direction)


def until(done, limit_secs: float = 20.0):
    """SleepFrames, sent lazily, until `done()` (a guard: at most `limit_secs`)."""
    for _ in range(int(limit_secs / 0.05)):
        if done():
            return
        yield SleepFrame(sleep=0.05)


async def run_tool(
    delay: float, *, barge_in: bool = False
) -> tuple[list, list, BookingServiceStandIn]:
    """One booking question through the service; the frames of interest that came out.

    `barge_in`: the caller interrupts while the request runs.
    """
    service = BookingServiceStandIn(secret="s3cret", api_key="k3y", delay=delay)
    async with OpenAIChatStandIn(responder=checking_availability) as chat, service:
        tool = declared(service.http_url)
        llm = ClosingOpenAILLMService(api_key="k", base_url=f"{chat.http_url}/v1")
        llm.register_function(
            tool.name, HttpToolHandler(tool, ACCESS), cancel_on_interruption=False
        )
        context = LLMContext(
            messages=[{"role": "user", "content": "I'd like to book a table for two."}],
            tools=ToolsSchema(standard_tools=[tool.schema()]),
        )
        interruption = [SleepFrame(sleep=delay / 2), InterruptionFrame()] if barge_in else []
        watcher = ResultWatcher()
        sent = chain(
            [LLMContextFrame(context), *interruption],
            until(lambda: watcher.seen),
            [SleepFrame(sleep=0.6)],  # past the filler's time: none follows the answer
        )
        down, _up = await run_test(Pipeline([llm, watcher]), frames_to_send=sent)
    kinds = (FunctionCallInProgressFrame, TTSSpeakFrame, FunctionCallResultFrame)
    kinds += (FunctionCallCancelFrame,)
    return [f for f in down if isinstance(f, kinds)], list(service.answers), service


async def test_a_prompt_answer_goes_back_as_the_result_without_a_filler():
    frames, answers, _ = await run_tool(delay=0.0)
    assert [type(f) for f in frames] == [FunctionCallInProgressFrame, FunctionCallResultFrame]
    assert frames[1].result == answers[0]


async def test_a_slow_answer_is_preceded_by_the_filler_once():
    frames, answers, service = await run_tool(delay=1.2)
    assert [type(f) for f in frames] == [
        FunctionCallInProgressFrame,
        TTSSpeakFrame,
        FunctionCallResultFrame,
    ]
    assert frames[1].text == FILLER
    assert frames[2].result == answers[0] and service.requests[0].signed


async def test_a_barge_in_while_the_request_runs_does_not_cancel_it():
    frames, answers, _ = await run_tool(delay=1.2, barge_in=True)
    assert [type(f) for f in frames] == [
        FunctionCallInProgressFrame,
        TTSSpeakFrame,
        FunctionCallResultFrame,
    ], "not cancelled"
    assert frames[-1].result == answers[0]
