"""ReplyAhead: a speculative context goes to the LLM as an ordinary one, behind a hold marker;
the strategy's verdict, in order behind it, releases it or withdraws it; so does a tool the
speculation wants while the turn is open."""

import asyncio

from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    Frame,
    InterruptionFrame,
    LLMContextFrame,
    LLMTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import FunctionCallParams
from pipecat.tests.utils import SleepFrame, run_test

from processors.reply_ahead import ReplyAhead
from turns.frames import (
    ReplyConfirmedFrame,
    ReplyWithdrawnFrame,
    SpeculationConfirmedFrame,
    SpeculationWithdrawnFrame,
    SpeculativeReplyFrame,
)

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


async def test_a_withdrawn_speculation_is_withdrawn_down_to_the_hold():
    frames = [speculative(), PAUSE, SpeculationWithdrawnFrame()]
    down, _ = await run_test(ReplyAhead(), frames_to_send=frames)
    assert types(down) == [SpeculativeReplyFrame, LLMContextFrame, ReplyWithdrawnFrame]
    assert down[2].refused_tool_calls == frozenset()


async def test_a_confirmed_speculation_is_released_at_the_hold():
    frames = [speculative(), PAUSE, SpeculationConfirmedFrame()]
    down, _ = await run_test(ReplyAhead(), frames_to_send=frames)
    assert types(down) == [SpeculativeReplyFrame, LLMContextFrame, ReplyConfirmedFrame]


async def test_pipecats_cancel_that_overtook_its_context_leaves_the_verdict_to_the_ordered_one():
    frames = [EagerEndOfTurnCancelFrame(), speculative(), PAUSE, SpeculationWithdrawnFrame()]
    down, _ = await run_test(ReplyAhead(), frames_to_send=frames)
    assert types(down) == [
        EagerEndOfTurnCancelFrame,
        SpeculativeReplyFrame,
        LLMContextFrame,
        ReplyWithdrawnFrame,
    ]


async def test_a_verdict_with_nothing_speculative_in_flight_does_nothing():
    frames = [speculative(), PAUSE, InterruptionFrame(), SpeculationConfirmedFrame()]
    down, _ = await run_test(ReplyAhead(), frames_to_send=frames)
    assert types(down) == [SpeculativeReplyFrame, LLMContextFrame, InterruptionFrame]


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
            params = self._params(f"t{self._calls}", frame.context)
            await self._ahead.guard(self._end_call)(params)

    async def _end_call(self, params: FunctionCallParams) -> None:
        self.ran.append(params.tool_call_id)

    def _params(self, tool_call_id: str, context: LLMContext) -> FunctionCallParams:
        return FunctionCallParams(
            function_name="end_call",
            tool_call_id=tool_call_id,
            arguments={},
            llm=None,
            pipeline_worker=None,
            context=context,  # the context the reply answers, as pipecat's LLM passes it
            result_callback=None,
        )


async def test_a_tool_a_speculative_reply_wants_is_refused_and_the_turn_end_asks_again():
    ahead = ReplyAhead()
    llm = ToolCallingLLM(ahead)
    frames = [UserStartedSpeakingFrame(), speculative(), PAUSE, UserStoppedSpeakingFrame()]
    frames += [LLMContextFrame(LLMContext())]
    down, up = await run_test(Pipeline([ahead, llm]), frames_to_send=frames)
    assert llm.ran == ["t2"], "only the reply to the ended turn hangs up"
    withdrawn = [f for f in down if isinstance(f, ReplyWithdrawnFrame)]
    assert [f.refused_tool_calls for f in withdrawn] == [frozenset({"t1"})]
    assert types(up) == [EagerEndOfTurnCancelFrame], "the speculation is cancelled upstream"


async def test_a_tool_wanted_after_the_turn_ended_waits_for_the_verdict():
    for verdict, ran in ((SpeculationConfirmedFrame(), ["t1"]), (SpeculationWithdrawnFrame(), [])):
        ahead = ReplyAhead()
        llm = ToolCallingLLM(ahead)
        turn = [UserStartedSpeakingFrame(), UserStoppedSpeakingFrame()]  # overtook the context
        await run_test(Pipeline([ahead, llm]), frames_to_send=[*turn, speculative(), verdict])
        assert llm.ran == ran


class SlowLLM(FrameProcessor):
    """Stands for the LLM after `ReplyAhead`: answers each context after a while, by name."""

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            await asyncio.sleep(0.1)  # streaming; an interruption cancels it, and what is queued
            said = frame.context.get_messages()[-1]["content"]
            await self.push_frame(LLMTextFrame(said))
        else:
            await self.push_frame(frame, direction)


def said(text: str) -> LLMContextFrame:
    return LLMContextFrame(LLMContext([{"role": "user", "content": text}]))


async def test_a_turn_end_that_asks_afresh_withdraws_the_speculation_before_its_context():
    # The turn's end pushes its context at once; the verdict on the speculation follows it
    # through the user aggregator's queue. Withdrawn after, it would cut the new reply too.
    spoken = LLMContextFrame(LLMContext([{"role": "user", "content": "yes"}]), speculation=True)
    frames = [spoken, PAUSE, said("yes, that works"), PAUSE, SpeculationWithdrawnFrame()]
    down, _ = await run_test(Pipeline([ReplyAhead(), SlowLLM()]), frames_to_send=frames)
    assert [f.text for f in down if isinstance(f, LLMTextFrame)] == ["yes, that works"]
    assert types(down)[:2] == [SpeculativeReplyFrame, ReplyWithdrawnFrame]
