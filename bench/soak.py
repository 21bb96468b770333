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


async def soak(server: BotServer, calls: int, warm_up: int = 3, log=print) -> Soak:
    """`warm_up` calls (first-call costs are not leaks), a reading, `calls` calls, a reading."""
    for n in range(warm_up):
        await _call(server, f"warm-up call {n + 1}", log)
    before, tasks_before = await _reading(server)
    failures, steps = 0, []
    for n in range(1, calls + 1):
        failures += not await _call(server, f"soak call {n}", log)
        if n % 50 == 0:
            steps.append(server.usage().pss_mb)
            log(f"  {server.bot.name}: {n} soak calls")
    after, tasks_after = await _reading(server)
    return Soak(calls, failures, before, after, tasks_before, tasks_after, steps)


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
