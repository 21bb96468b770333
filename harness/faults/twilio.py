"""Twilio REST faults: the bot ends a call and the hang-up request fails, or never answers."""

import asyncio
import time
from dataclasses import dataclass, field
from functools import partial

import aiohttp
from loguru import logger

from harness.faults import Fault, Outcome, bot_with, dial, heard_sentences, spoken_texts
from recordings import RECORDINGS
from server.twilio_rest import RetryPolicy
from standins.twilio_rest import TwilioRequest

GOODBYE = RECORDINGS / "goodbye.wav"
FAREWELL = "Thanks for calling Luigi's. Goodbye!"
CLOSE_LIMIT_SECS = 3.0  # farewell played → socket closed, whatever the REST API does


@dataclass
class HangUpRun:
    """What a bot-ended call saw while the REST hang-up failed: the outcome and its evidence."""

    outcome: Outcome
    call_sid: str = ""
    attempts: list[TwilioRequest] = field(default_factory=list)  # hang-up requests, in order
    logs: list[tuple[str, str]] = field(default_factory=list)  # (level, message), WARNING+
    closed_after: float | None = None  # socket closed, seconds after the farewell played
    idle_after: float | None = None  # /health "calls" back to 0, seconds after the close
    hung_up: bool = False  # the stand-in saw the call completed

    @property
    def gaps(self) -> list[float]:
        """Seconds between consecutive hang-up attempts reaching the stand-in."""
        return [b.at - a.at for a, b in zip(self.attempts, self.attempts[1:], strict=False)]


async def bot_ends_call(
    *, fail: int = 0, status: int = 500, hang: int = 0, retry: RetryPolicy | None = None
) -> HangUpRun:
    """The caller says goodbye; the bot's farewell plays and it hangs up through REST.

    The stand-in answers the first `fail` hang-up attempts with `status` and leaves the first
    `hang` unanswered. `retry`: the bot's retry policy (default: the shipped one).
    """
    logs: list[tuple[str, str]] = []
    sink = logger.add(
        lambda m: logs.append((m.record["level"].name, m.record["message"])), level="WARNING"
    )
    try:
        async with bot_with() as (bot, standins):
            twilio = bot.app.state.twilio
            policy = twilio.retry = retry or twilio.retry
            standins.twilio.fail_next, standins.twilio.fail_status = fail, status
            standins.twilio.hang_next = hang
            call = await dial(bot)
            await call.listen()
            await call.say(GOODBYE)
            await call.listen(timeout=10)
            played = call.heard[-1].end if call.heard else call.now()
            await call.wait_closed(timeout=10)
            closed_at = call.events("closed")[0].t
            idle = await _wait_idle(bot.url, policy.total_timeout + 5)
            run = HangUpRun(
                outcome=Outcome(False, heard_sentences(call, spoken_texts(standins))),
                call_sid=call.call_sid,
                attempts=[r for r in standins.twilio.requests if call.call_sid in r.path],
                logs=logs,
                closed_after=closed_at - played,
                idle_after=None if idle is None else call.stream_time(idle) - closed_at,
                hung_up=call.call_sid in standins.twilio.hangups,
            )
    finally:
        logger.remove(sink)
    return run


async def _wait_idle(url: str, limit: float) -> float | None:
    """Poll /health until it counts no call; when that was (time.monotonic()), or None."""
    deadline = time.monotonic() + limit
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            async with session.get(url + "/health") as response:
                if (await response.json())["calls"] == 0:
                    return time.monotonic()
            await asyncio.sleep(0.05)
    return None


def judge_recovered(run: HangUpRun, fail: int) -> HangUpRun:
    """Failing `fail` times then OK: retried with growing pauses and the call ended."""
    problems = _common_problems(run)
    statuses = [r.status for r in run.attempts]
    if statuses != [500] * fail + [200]:
        problems.append(f"hang-up attempts answered {statuses}, expected {fail} × 500 then 200")
    if any(b <= a for a, b in zip(run.gaps, run.gaps[1:], strict=False)):
        problems.append(f"pauses between attempts did not grow: {_secs(run.gaps)}")
    if not run.hung_up:
        problems.append("the call was never completed at Twilio")
    warned = [m for level, m in run.logs if level == "WARNING" and "attempt" in m]
    if len(warned) != fail:
        problems.append(f"{len(warned)} retry warning(s) logged, expected {fail}")
    if errors := [m for level, m in run.logs if level in ("ERROR", "CRITICAL")]:
        problems.append(f"logged errors: {errors}")
    return _finish(run, problems)


def judge_gave_up(run: HangUpRun, policy: RetryPolicy) -> HangUpRun:
    """Never succeeding: a bounded number of attempts, then one ERROR naming the call."""
    problems = _common_problems(run)
    if not 1 <= len(run.attempts) <= policy.attempts:
        problems.append(f"{len(run.attempts)} hang-up attempts (at most {policy.attempts})")
    gave_up = [m for level, m in run.logs if level == "ERROR" and run.call_sid in m]
    if len(gave_up) != 1:
        problems.append(f"expected one ERROR naming {run.call_sid}, got {gave_up}")
    return _finish(run, problems)


def _common_problems(run: HangUpRun) -> list[str]:
    problems = []
    if not " ".join(run.outcome.heard).endswith(FAREWELL):  # as sentences or whole
        problems.append(f"the caller did not hear the farewell: {run.outcome.heard}")
    if run.closed_after is None or run.closed_after > CLOSE_LIMIT_SECS:
        problems.append(f"media WebSocket closed {run.closed_after} s after the farewell")
    if run.idle_after is None:
        problems.append("/health still counted the call")
    if any("the call failed" in m for _, m in run.logs):
        problems.append("the call's handler raised")
    return problems


def _finish(run: HangUpRun, problems: list[str]) -> HangUpRun:
    run.outcome.problems, run.outcome.survived = problems, not problems
    idle = "never" if run.idle_after is None else f"{run.idle_after:.2f} s after"
    run.outcome.figures = (
        f"{len(run.attempts)} attempt(s), pauses {_secs(run.gaps)}; socket closed "
        f"{run.closed_after:.2f} s after the farewell; /health idle {idle}"
    )
    return run


def _secs(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f} s" for v in values) + "]"


async def _recovers() -> Outcome:
    return judge_recovered(await bot_ends_call(fail=2), fail=2).outcome


async def _gives_up(**fault) -> Outcome:
    run = await bot_ends_call(**fault)
    return judge_gave_up(run, RetryPolicy()).outcome


FAULTS = [
    Fault(
        "Twilio REST fails on hang-up",
        "Calls update answers 500 twice, then 200",
        _recovers,
    ),
    Fault(
        "Twilio REST down on hang-up",
        "Calls update answers 500 every time",
        partial(_gives_up, fail=1_000_000),
    ),
    Fault(
        "Twilio REST rate-limits the hang-up",
        "Calls update answers 429 every time",
        partial(_gives_up, fail=1_000_000, status=429),
    ),
    Fault(
        "Twilio REST hangs on hang-up",
        "Calls update accepts the request and never answers",
        partial(_gives_up, hang=1_000_000),
    ),
]
