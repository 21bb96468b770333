"""Many calls one after another: does anything pile up in the server?"""

import asyncio
from dataclasses import dataclass

from bench.conversation import short_call
from bench.servers import BotServer, Usage


@dataclass
class Soak:
    """A server's resources before and after `calls` sequential calls."""

    calls: int
    failures: int
    before: Usage
    after: Usage
    tasks_before: int
    tasks_after: int
    pss_steps_mb: list[float]  # after every 50 calls: does it level off?


async def soak(
    server: BotServer, calls: int, warm_up: int = 3, log=print, *, at_once: int = 1
) -> Soak:
    """`warm_up` calls, a reading, `calls` calls, a reading; `at_once` calls on the line together.

    Each caller dials again as soon as it hangs up. The warm-up runs at the same concurrency:
    the allocator's high-water mark of that many calls, and first-call costs, are not leaks.
    """
    await _calls(server, warm_up, at_once, "warm-up", log)
    before, tasks_before = await _reading(server)
    failures, steps = await _calls(server, calls, at_once, "soak", log)
    after, tasks_after = await _reading(server)
    return Soak(calls, failures, before, after, tasks_before, tasks_after, steps)


async def _calls(
    server: BotServer, calls: int, at_once: int, kind: str, log
) -> tuple[int, list[float]]:
    """`calls` calls, `at_once` at a time: how many failed, and the PSS every 50."""
    started, done, failed, steps = 0, 0, 0, []

    async def caller() -> None:
        nonlocal started, done, failed
        while started < calls:
            started += 1
            ok = await _call(server, f"{kind} call {started}", log)
            done, failed = done + 1, failed + (not ok)
            if done % 50 == 0:
                steps.append(server.usage().pss_mb)
                log(f"  {server.bot.name}: {done} {kind} calls")

    await asyncio.gather(*(caller() for _ in range(at_once)))
    return failed, steps


async def _call(server: BotServer, name: str, log) -> bool:
    """One short call; whether the caller heard the reply (a failure is logged, not raised)."""
    try:
        await short_call(server.url)
        return True
    except (TimeoutError, OSError) as e:
        log(f"  {server.bot.name}: {name} failed: {e!r}")
        return False


async def _reading(server: BotServer) -> tuple[Usage, int]:
    while (health := await server.health())["calls"]:  # the last call is still closing
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    return server.usage(), health["tasks"]
