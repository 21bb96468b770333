"""HTTP tool faults: the booking system down, failing or too slow is a result the LLM talks
about; the caller hears it, never silence, and the call goes on (harness/faults/tools.py)."""

from harness.faults.tools import server_down, server_error, server_too_slow


async def test_a_booking_system_that_is_down_is_told_to_the_caller():
    run = await server_down()

    assert run.outcome.survived, run.outcome.problems
    assert run.tool_requests == []


async def test_a_booking_system_answering_500_is_told_to_the_caller():
    run = await server_error()

    assert run.outcome.survived, run.outcome.problems
    assert [request.status for request in run.tool_requests] == [500]


async def test_a_booking_system_slower_than_the_timeout_gets_the_filler_then_the_failure():
    run = await server_too_slow()

    assert run.outcome.survived, run.outcome.problems
    assert [request.status for request in run.tool_requests] == [499], "the bot gave up on it"
