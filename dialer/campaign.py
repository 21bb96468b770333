"""A campaign: many calls, never more than N at once, busy and unanswered numbers tried again."""

import asyncio
import csv
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from dialer.api import APIError, BotAPI
from dialer.numbers import Target

OUTCOMES = ("answered", "voicemail", "busy", "no answer", "failed")
RETRIED = ("busy", "no answer")
# A full or draining server answers 503: wait and ask again (not an attempt), this often.
FULL_SERVER_WAIT_SECS = 2.0
FULL_SERVER_TRIES = 30


@dataclass(frozen=True)
class Retries:
    """How often a busy or unanswered number is called again, and how long after."""

    times: int
    delay_secs: float


@dataclass(frozen=True)
class Attempt:
    """One call placed to a target, and how it ended."""

    target: Target
    number: int  # 1 for the first call to the target
    call_sid: str
    outcome: str  # one of OUTCOMES
    error: str = ""  # why a call could not be placed or followed


class Campaign:
    """Calls every target through `api`, at most `concurrency` calls in flight at once.

    A call is in flight from its `POST /calls` until its outcome is known. `retries(pipeline)`:
    the retries a target's pipeline declares; `say`: where progress lines go.
    """

    def __init__(
        self,
        api: BotAPI,
        *,
        concurrency: int,
        retries: Callable[[str | None], Retries],
        say: Callable[[str], None] = print,
    ):
        """Place calls through `api`."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1 (got {concurrency})")
        self._api, self._concurrency = api, concurrency
        self._retries, self._say = retries, say
        self.attempts: list[Attempt] = []
        self._done = 0

    async def run(self, targets: list[Target]) -> list[Attempt]:
        """Call every target (and again, as its retries say); every attempt, in order."""
        capacity = await self._api.capacity()
        limit = min(self._concurrency, capacity) if capacity else self._concurrency
        if limit < self._concurrency:
            self._say(f"the server takes {capacity} calls at once (MAX_CALLS): {limit} at a time")
        slots = asyncio.Semaphore(limit)
        await asyncio.gather(*(self._call(target, slots, len(targets)) for target in targets))
        return self.attempts

    async def _call(self, target: Target, slots: asyncio.Semaphore, total: int) -> None:
        retries = self._retries(target.pipeline)
        for number in range(1, retries.times + 2):
            async with slots:
                attempt = await self._attempt(target, number)
            self.attempts.append(attempt)
            again = attempt.outcome in RETRIED and number <= retries.times
            if not again:
                self._done += 1
            self._say(
                _progress(attempt, retries, again, f"[{self._done:>{len(str(total))}}/{total}]")
            )
            if not again:
                return
            await asyncio.sleep(retries.delay_secs)

    async def _attempt(self, target: Target, number: int) -> Attempt:
        """Place one call and follow it to its end; a call that cannot be placed failed."""
        for _ in range(FULL_SERVER_TRIES):
            try:
                call_sid = await self._api.place(
                    target.to, pipeline=target.pipeline, variables=target.variables
                )
                end = await self._api.ended(call_sid)
            except APIError as e:
                if e.status == 503:
                    await asyncio.sleep(FULL_SERVER_WAIT_SECS)
                    continue
                return Attempt(target, number, "", "failed", error=str(e))
            except (aiohttp.ClientError, OSError) as e:
                return Attempt(target, number, "", "failed", error=f"the bot server: {e!r}")
            return Attempt(target, number, call_sid, end.outcome)
        return Attempt(target, number, "", "failed", error="the server stayed full")


def _progress(attempt: Attempt, retries: Retries, again: bool, count: str) -> str:
    """e.g. `[ 3/10] +15551230000  busy (attempt 1 of 3, CA…); again in 60 s`."""
    where = attempt.call_sid or attempt.error
    line = f"{count} {attempt.target.to}  {attempt.outcome} "
    line += f"(attempt {attempt.number} of {retries.times + 1}, {where})"
    return line + (f"; again in {retries.delay_secs:g} s" if again else "")


def summary(attempts: list[Attempt]) -> str:
    """e.g. `10 numbers, 13 calls: 4 answered, 3 voicemail, 1 busy, 1 no answer, 1 failed`."""
    final = {id(attempt.target): attempt.outcome for attempt in attempts}  # each one's last
    counts = Counter(final.values())
    outcomes = ", ".join(f"{counts[outcome]} {outcome}" for outcome in OUTCOMES)
    return f"{len(final)} numbers, {len(attempts)} calls: {outcomes}"


def write_results(path: Path, attempts: list[Attempt]) -> None:
    """Every attempt as a CSV row: number, attempt, call SID, outcome, error, variables."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["to", "attempt", "call_sid", "outcome", "error", "variables"])
        for a in attempts:
            variables = " ".join(f"{k}={v}" for k, v in a.target.variables.items())
            writer.writerow([a.target.to, a.number, a.call_sid, a.outcome, a.error, variables])
