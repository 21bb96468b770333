"""ReplyAhead: a speculative context goes to the LLM as an ordinary one, behind a hold marker;
a withdrawal, or a tool the speculation wants, becomes a `ReplyWithdrawnFrame`."""

from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    Frame,
    LLMContextFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import FunctionCallParams
from pipecat.tests.utils import SleepFrame, run_test

from processors.reply_ahead import ReplyAhead
from turns.frames import ReplyWithdrawnFrame, SpeculativeReplyFrame

PAUSE = SleepFrame(sleep=0.05)  # a system frame overtakes queued ones; in a call it comes later


def speculative() -> LLMContextFrame:
    return LLMContextFrame(context=LLMContext(), speculation=True)


def types(frames) -> list[type]:
    return [type(frame) for frame in frames]


async def test_a_speculative_context_goes_on_as_an_ordinary_one_behind_a_marker():
    down, _ = await run_test(ReplyAhead(), frames_to_send=[speculative()])
    assert types(down) == [SpeculativeReplyFrame, LLMContextFrame]
    assert not down[1].speculation


async def test_an_ordinary_context_passes_unmarked():
    down, _ = await run_test(ReplyAhead(), frames_to_send=[LLMContextFrame(LLMContext())])
    assert types(down) == [LLMContextFrame]


async def test_a_cancelled_speculation_is_withdrawn_down_to_the_hold():
    frames = [speculative(), PAUSE, EagerEndOfTurnCancelFrame()]
    down, _ = await run_test(ReplyAhead(), frames_to_send=frames)
    assert types(down)[2:] == [ReplyWithdrawnFrame, EagerEndOfTurnCancelFrame]
    assert down[2].refused_tool_calls == frozenset()


async def test_a_cancel_after_the_turn_ended_withdraws_nothing():
    frames = [speculative(), PAUSE, UserStoppedSpeakingFrame(), EagerEndOfTurnCancelFrame()]
    down, _ = await run_test(ReplyAhead(), frames_to_send=frames)
    assert ReplyWithdrawnFrame not in types(down)


class ToolCallingLLM(FrameProcessor):
    """Stands for the LLM after `ReplyAhead`: each context's reply asks for end_call."""

    def __init__(self, ahead: ReplyAhead):
        super().__init__()
        self.ran: list[str] = []
        self._ahead, self._calls = ahead, 0

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            self._calls += 1
            await self._ahead.guard(self._end_call)(self._params(f"t{self._calls}"))

    async def _end_call(self, params: FunctionCallParams) -> None:
        self.ran.append(params.tool_call_id)

    def _params(self, tool_call_id: str) -> FunctionCallParams:
        return FunctionCallParams(
            function_name="end_call",
            tool_call_id=tool_call_id,
            arguments={},
            llm=None,
            pipeline_worker=None,
            context=LLMContext(),
            result_callback=None,
        )


async def test_a_tool_a_speculative_reply_wants_is_refused_and_the_turn_end_asks_again():
    ahead = ReplyAhead()
    llm = ToolCallingLLM(ahead)
    frames = [speculative(), PAUSE, UserStoppedSpeakingFrame(), LLMContextFrame(LLMContext())]
    down, up = await run_test(Pipeline([ahead, llm]), frames_to_send=frames)
    assert llm.ran == ["t2"], "only the reply to the ended turn hangs up"
    withdrawn = [f for f in down if isinstance(f, ReplyWithdrawnFrame)]
    assert [f.refused_tool_calls for f in withdrawn] == [frozenset({"t1"})]
    assert types(up) == [EagerEndOfTurnCancelFrame], "the speculation is cancelled upstream"
