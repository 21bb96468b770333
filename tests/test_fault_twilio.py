"""The REST hang-up retries what may pass, gives up within bounds, and never holds the call open."""

import pytest

from harness.faults.twilio import bot_ends_call, judge_gave_up, judge_recovered
from server.local import free_socket
from server.twilio_rest import RetryPolicy, TwilioCalls
from standins.twilio_rest import TwilioRestStandIn

ACCOUNT = "AC" + "0" * 32
TOKEN = "test-auth-token"
CALL = "CA" + "1" * 32
QUICK = RetryPolicy(first_delay=0.05, attempt_timeout=0.5, total_timeout=2.0)


def test_the_backoff_doubles_from_half_a_second_and_is_capped():
    policy = RetryPolicy()
    assert [policy.delay(n, rand=lambda: 0.0) for n in range(1, 6)] == [0.5, 1, 2, 4, 4]


def test_jitter_only_shortens_a_pause_and_keeps_it_growing():
    policy = RetryPolicy()
    shortest = [policy.delay(n, rand=lambda: 0.999) for n in range(1, 4)]
    longest = [policy.delay(n, rand=lambda: 0.0) for n in range(1, 4)]
    assert all(0.75 * top <= low < top for low, top in zip(shortest, longest, strict=True))
    assert all(longest[n] < shortest[n + 1] for n in range(2)), "jitter never reorders pauses"


def test_the_shipped_policy_is_bounded():
    policy = RetryPolicy()
    assert policy.attempts <= 5 and policy.attempt_timeout < policy.total_timeout <= 15


async def test_the_bot_retries_a_failing_hang_up_and_the_call_ends_at_twilio():
    run = judge_recovered(await bot_ends_call(fail=2), fail=2)

    assert run.outcome.survived, run.outcome.problems
    assert [r.status for r in run.attempts] == [500, 500, 200]
    assert run.hung_up
    first, second = run.gaps
    assert 0.3 < first < second < 4.0, run.gaps  # 0.5 s, then 1 s, ±25% jitter
    warnings = [m for level, m in run.logs if level == "WARNING"]
    assert any("attempt 1 of 4" in m for m in warnings), warnings
    assert any("attempt 2 of 4" in m for m in warnings), warnings


async def test_a_hang_up_that_always_fails_is_given_up_with_an_error_naming_the_call():
    run = judge_gave_up(await bot_ends_call(fail=1_000_000), RetryPolicy())

    assert run.outcome.survived, run.outcome.problems
    assert [r.status for r in run.attempts] == [500] * 4
    error = next(m for level, m in run.logs if level == "ERROR")
    assert run.call_sid in error and "after 4 attempt(s)" in error and "HTTP 500" in error
    assert run.closed_after is not None and run.closed_after < 3.0
    # The pauses are 0.375-0.5, 0.75-1 and 1.5-2 s: idle ~3.5 s after the close.
    assert run.idle_after is not None and run.idle_after < RetryPolicy().total_timeout + 3


async def test_a_hang_up_that_never_answers_is_bounded_by_its_timeouts():
    policy = RetryPolicy(attempt_timeout=1.0, total_timeout=3.0)
    run = judge_gave_up(await bot_ends_call(hang=1_000_000, retry=policy), policy)

    assert run.outcome.survived, run.outcome.problems
    assert 2 <= len(run.attempts) <= policy.attempts and not run.hung_up
    error = next(m for level, m in run.logs if level == "ERROR")
    assert run.call_sid in error and "no answer within" in error
    assert run.closed_after is not None and run.closed_after < 3.0  # not held by the hang-up
    assert run.idle_after is not None and run.idle_after < policy.total_timeout + 3


@pytest.mark.parametrize("status", [500, 429])
async def test_transient_refusals_are_retried_until_one_succeeds(status):
    async with TwilioRestStandIn(
        account_sid=ACCOUNT, auth_token=TOKEN, fail_next=2, fail_status=status
    ) as standin:
        twilio = TwilioCalls(ACCOUNT, TOKEN, base_url=standin.http_url, retry=QUICK)
        ended = await twilio.hang_up(CALL)
        await twilio.close()

    assert ended and [r.status for r in standin.requests] == [status, status, 200]


async def test_a_wrong_token_is_not_retried(log_lines):
    async with TwilioRestStandIn(account_sid=ACCOUNT, auth_token=TOKEN) as standin:
        twilio = TwilioCalls(ACCOUNT, "wrong", base_url=standin.http_url, retry=QUICK)
        ended = await twilio.hang_up(CALL)
        await twilio.close()

    assert not ended and [r.status for r in standin.requests] == [401]
    assert any(f"Twilio refused to hang up {CALL}: HTTP 401" in line for line in log_lines)


async def test_a_call_that_already_ended_is_not_retried_nor_an_error(log_lines):
    async with TwilioRestStandIn(
        account_sid=ACCOUNT, auth_token=TOKEN, auto_register=False
    ) as standin:
        twilio = TwilioCalls(ACCOUNT, TOKEN, base_url=standin.http_url, retry=QUICK)
        ended = await twilio.hang_up(CALL)
        await twilio.close()

    assert not ended and [r.status for r in standin.requests] == [404]
    assert log_lines == []


async def test_an_unreachable_api_is_retried_then_given_up(log_lines):
    sock = free_socket()  # bound, never listening: connections are refused
    twilio = TwilioCalls(ACCOUNT, TOKEN, base_url=f"http://127.0.0.1:{sock.getsockname()[1]}")
    twilio.retry = QUICK
    ended = await twilio.hang_up(CALL)
    await twilio.close()
    sock.close()

    assert not ended
    retries = [line for line in log_lines if "could not reach Twilio" in line]
    assert len(retries) == QUICK.attempts and "after 4 attempt(s)" in retries[-1]
