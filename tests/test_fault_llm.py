"""LLM faults: a 500, a stall or a cut stream fails the turn fast; the caller hears an apology.

The service tests drive `ClosingOpenAILLMService` against the chat stand-in's faults; the call
tests run the fault matrix's scenarios (harness/faults/llm.py): a whole simulated call through
each fault, then the same question again.
"""

import asyncio
import time

import pytest
from pipecat.frames.frames import (
    ErrorFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMTextFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import run_test
from pipecat.utils.errors import ErrorCategory

from harness.faults.llm import (
    APOLOGY,
    BOOKING_REPLY,
    BOOKING_TURN,
    LLMFaultRun,
    llm_500,
    llm_500_once,
    llm_stream_cut,
    llm_timeout,
)
from services.openai_llm import ClosingOpenAILLMService, NoFirstToken, StreamCut, StreamStalled
from standins.openai_chat import ChatFault, OpenAIChatStandIn, fixed_reply, request_number

QUESTION = [{"role": "user", "content": "When do you open?"}]
ANSWER = "We open at nine on Saturday and close at eleven."
LOOSE_APOLOGY_LIMIT = 3.0  # asserted; the 2 s target is reported (the machine is shared)


async def complete(stand_in: OpenAIChatStandIn | None, **knobs) -> tuple[str, list, float]:
    """One turn through the service: the text it streamed, errors upstream, seconds taken."""
    base_url = f"{stand_in.http_url}/v1" if stand_in else "http://127.0.0.1:9/v1"
    llm = ClosingOpenAILLMService(api_key="k", base_url=base_url, **knobs)
    started = time.monotonic()
    down, up = await run_test(
        llm, frames_to_send=[LLMContextFrame(LLMContext(messages=list(QUESTION)))]
    )
    took = time.monotonic() - started
    assert isinstance(down[-1], LLMFullResponseEndFrame), "the turn always ends"
    text = "".join(f.text for f in down if isinstance(f, LLMTextFrame))
    return text, [f for f in up if isinstance(f, ErrorFrame)], took


# -- the service: fails fast, and says why -------------------------------------------------------


async def test_one_500_is_retried_at_once_and_the_answer_streams():
    async with OpenAIChatStandIn(faults=[ChatFault("500")]) as stand_in:
        text, errors, _ = await complete(stand_in)
    assert text == ANSWER and not errors
    assert [r.status for r in stand_in.requests] == [500, 200]
    # Within the first-token budget (1.5 s), which the retry must fit in: no backoff.
    assert stand_in.requests[1].at - stand_in.requests[0].at < 1.5


async def test_a_second_500_fails_the_turn_without_more_tries():
    async with OpenAIChatStandIn(faults=[ChatFault("500", times=5)]) as stand_in:
        text, [error], took = await complete(stand_in)
    assert text == "" and len(stand_in.requests) == 2  # the openai client itself never retries
    assert error.category == ErrorCategory.SERVER and error.processor.is_usable
    assert took < 3.0  # no backoff (the openai client's own would take seconds more)


async def test_a_refused_connection_is_retried_once_then_fails_as_connectivity():
    text, [error], took = await complete(None)
    assert text == "" and error.category == ErrorCategory.CONNECTIVITY
    assert error.processor.is_usable and took < 3.0


@pytest.mark.parametrize("kind", ["stall", "stall-after-headers"])
async def test_a_request_that_never_streams_fails_at_the_first_token_deadline(kind):
    async with OpenAIChatStandIn(faults=[ChatFault(kind)]) as stand_in:
        text, [error], took = await complete(stand_in, first_token_timeout_secs=0.4)
        await asyncio.sleep(0.1)  # the stand-in notices the client closing
    assert text == "" and isinstance(error.exception, NoFirstToken)
    assert error.category == ErrorCategory.SERVER and error.processor.is_usable
    assert 0.4 <= took < 3.0  # not before the deadline; well before the client's 20 s
    [stalled] = stand_in.requests
    assert stalled.gave_up_at is not None, "the bot closed the stalled request"
    assert 0.3 <= stalled.gave_up_at - stalled.at < 3.0


async def test_a_reply_that_goes_quiet_mid_stream_fails_at_the_chunk_deadline():
    stand_in = OpenAIChatStandIn(responder=fixed_reply(), tokens_per_second=2)
    async with stand_in:
        text, [error], took = await complete(stand_in, chunk_timeout_secs=0.3)
        [record] = await stand_in.wait_for_responses(1)
    assert isinstance(error.exception, StreamStalled)
    assert text == "Thank " and record.cancelled  # one token, then 0.5 s of nothing
    assert took < 3.0


@pytest.mark.parametrize("kind", ["cut", "truncate"])
async def test_a_stream_ending_without_a_finish_reason_is_a_cut(kind):
    fault = ChatFault(kind, after_tokens=4)
    async with OpenAIChatStandIn(faults=[fault]) as stand_in:
        text, [error], _ = await complete(stand_in)
    assert text == "We open at nine "  # what streamed before the cut still went on
    assert isinstance(error.exception, StreamCut) and error.processor.is_usable
    assert stand_in.responses[0].cut and stand_in.responses[0].tokens_sent == 4


async def test_a_rejected_key_is_not_retried_and_makes_the_llm_unusable():
    async with OpenAIChatStandIn(api_key="right") as stand_in:
        _, [error], _ = await complete(stand_in)
    assert len(stand_in.requests) == 1
    assert error.category == ErrorCategory.AUTHENTICATION and not error.processor.is_usable


async def test_faults_pick_requests_by_index_and_record_what_they_injected():
    faults = [ChatFault("500", request_number(1))]
    async with OpenAIChatStandIn(faults=faults) as stand_in:
        await complete(stand_in)  # request 0: answered
        await complete(stand_in)  # request 1: 500, retried as request 2
    assert [(r.index, r.fault, r.status) for r in stand_in.requests] == [
        (0, None, 200),
        (1, "500", 500),
        (2, None, 200),
    ]
    assert stand_in.injected == [stand_in.requests[1]]


# -- whole calls ---------------------------------------------------------------------------------


def assert_survived(run: LLMFaultRun) -> None:
    assert run.outcome.survived, "\n".join(run.outcome.problems)
    assert run.silence_before_apology is None or run.silence_before_apology < LOOSE_APOLOGY_LIMIT


def warnings(run: LLMFaultRun, text: str) -> list[str]:
    return [m for level, m in run.logs if level == "WARNING" and text in m]


def apologies(run: LLMFaultRun) -> list[str]:
    """The apology processor's warnings: one per apology, naming the LLM's error."""
    return warnings(run, "the LLM failed the caller's turn")


async def test_a_500_on_a_turn_and_its_retry_is_apologised_for_and_the_next_turn_answered():
    run = await llm_500()
    assert_survived(run)
    # The booking turn's requests (speculative ones too) all failed; the next turn's did not.
    turn = [r for r in run.requests if BOOKING_TURN(r)]
    assert {(r.fault, r.status) for r in turn} == {("500", 500)}
    assert {(r.fault, r.status) for r in run.requests if r not in turn} == {(None, 200)}
    # Each try retried once, unless the caller went on first (a speculation withdrawn).
    retries = len(warnings(run, "retrying once"))
    assert retries <= len(turn) <= 2 * retries
    [apology] = apologies(run)
    assert "Error code: 500" in apology
    assert run.next_messages[-2:] == [
        {"role": "assistant", "content": APOLOGY},
        {"role": "user", "content": "Hi, I'd like to book a table for two tomorrow at seven."},
    ]


async def test_one_500_then_success_the_caller_hears_the_real_answer_and_no_apology():
    run = await llm_500_once()
    assert_survived(run)
    assert [r.status for r in run.requests if r.fault] == [500]
    assert {r.status for r in run.requests if not r.fault} == {200}
    assert not apologies(run)
    assert {"role": "assistant", "content": BOOKING_REPLY} in run.next_messages


async def test_a_stalled_turn_is_apologised_for_at_the_first_token_deadline():
    run = await llm_timeout()
    assert_survived(run)
    stalled = run.failed
    assert stalled is not None
    # The bot closed it (the deadline itself is timed by the service test above: the stand-in
    # sees a request arrive late on a loaded machine, so its own clock cannot time it).
    assert stalled.fault == "stall" and stalled.gave_up_at is not None, run.requests
    [apology] = apologies(run)
    assert "no response within 1.5 s" in apology


async def test_a_stream_cut_mid_reply_the_caller_hears_the_part_then_the_apology():
    run = await llm_stream_cut()
    assert_survived(run)
    cut = run.failed
    assert cut is not None and cut.fault == "cut"
    [apology] = apologies(run)
    assert "the stream broke after 7 chunks" in apology  # the role chunk and 6 tokens
    # The context holds what was heard of the cut reply, then the apology, once each.
    assert [m["content"] for m in run.next_messages if m["role"] == "assistant"][1:] == [
        "Of course. A table for two",
        APOLOGY,
    ]
