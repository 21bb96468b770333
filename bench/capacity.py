"""How many calls at once before the caller notices: concurrency levels until the knee."""

import asyncio
import random
import statistics
from dataclasses import dataclass, field

import psutil

from bench.conversation import CallResult, Expectation, conversation
from bench.servers import BotServer
from standins.stack import StandIns

LAG_LIMIT_S = 0.1  # inbound audio later than this behind real time: the server fell behind
GROWTH_LIMIT = 0.2  # p95 reply overhead may grow 20% over one call's ...
NOISE_FLOOR_S = 0.02  # ... or by one playout tick (20 ms), the resolution of the measurement


def p95(values: list[float]) -> float:
    """The 95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


@dataclass
class Level:
    """One concurrency level's figures."""

    calls: int
    results: list[CallResult]
    failures: list[str]
    cpu_s: float  # server CPU seconds during the level
    harness_cpu_s: float  # the bench process's own CPU seconds (callers and stand-ins)
    wall_s: float
    peak_pss_mb: float
    idle_pss_mb: float
    max_lag_s: float  # worst inbound-audio lag seen by the STT stand-in
    overheads: list[float] = field(init=False)

    def __post_init__(self) -> None:
        self.overheads = [t.overhead_s for r in self.results for t in r.turns]

    @property
    def call_minutes(self) -> float:
        """Minutes of calls served."""
        return sum(r.seconds for r in self.results) / 60

    @property
    def cpu_per_call_minute(self) -> float:
        """Server CPU seconds per minute of call."""
        return self.cpu_s / self.call_minutes if self.results else float("nan")

    @property
    def mb_per_call(self) -> float:
        """Resident memory (PSS) added per concurrent call."""
        return (self.peak_pss_mb - self.idle_pss_mb) / self.calls

    @property
    def stalls(self) -> list[float]:
        """Every gap the callers heard inside the bot's audio (s)."""
        return [gap for r in self.results for gap in r.stalls]

    @property
    def caller_lag_s(self) -> float:
        """The callers' own worst lateness: what of the inbound lag the harness caused."""
        return max((r.clock_lag for r in self.results), default=0.0)

    @property
    def p95_overhead(self) -> float:
        """95th percentile of the pipeline's own reply latency."""
        return p95(self.overheads) if self.overheads else float("inf")

    def within(self, lone_p95: float) -> bool:
        """Whether callers at this level fare as well as a lone caller (p95 overhead given)."""
        limit = max(lone_p95 * (1 + GROWTH_LIMIT), lone_p95 + NOISE_FLOOR_S)
        return (
            not self.failures
            and not self.stalls
            and self.p95_overhead <= limit
            and self.max_lag_s <= LAG_LIMIT_S
        )


async def run_level(
    server: BotServer, standins: StandIns, expected: Expectation, calls: int, spread_s: float
) -> Level:
    """`calls` simultaneous conversations, their starts spread over `spread_s` seconds."""
    stt_before = len(standins.stt.connections)
    idle = server.usage()
    harness = psutil.Process()
    harness_before = sum(harness.cpu_times()[:2])
    peak = [idle.pss_mb]
    sampler = asyncio.create_task(_sample_pss(server, peak))
    started = asyncio.get_running_loop().time()
    rng = random.Random(calls)
    outcomes = await asyncio.gather(
        *(_staggered(server.url, expected, rng.uniform(0, spread_s)) for _ in range(calls)),
        return_exceptions=True,
    )
    wall = asyncio.get_running_loop().time() - started
    sampler.cancel()
    used = server.usage()
    lags = [c.max_lag for c in standins.stt.connections[stt_before:]]
    return Level(
        calls=calls,
        results=[o for o in outcomes if isinstance(o, CallResult)],
        failures=[repr(o) for o in outcomes if isinstance(o, BaseException)],
        cpu_s=used.cpu_s - idle.cpu_s,
        harness_cpu_s=sum(harness.cpu_times()[:2]) - harness_before,
        wall_s=wall,
        peak_pss_mb=peak[0],
        idle_pss_mb=idle.pss_mb,
        max_lag_s=max(lags, default=0.0),
    )


async def _staggered(url: str, expected: Expectation, delay: float) -> CallResult:
    await asyncio.sleep(delay)
    return await conversation(url, expected)


async def _sample_pss(server: BotServer, peak: list[float]) -> None:
    while True:
        await asyncio.sleep(1.0)
        usage = await asyncio.to_thread(server.usage)
        peak[0] = max(peak[0], usage.pss_mb)


async def find_knee(
    server: BotServer,
    standins: StandIns,
    expected: Expectation,
    levels: list[int],
    spread_s: float,
    lone_p95: float,
    log=print,
) -> list[Level]:
    """Run levels in order until one falls short of a lone caller; returns all run."""
    done: list[Level] = []
    for calls in levels:
        level = await run_level(server, standins, expected, calls, spread_s)
        done.append(level)
        log(
            f"  {server.bot.name}: {calls:>3} calls"
            f"  p95 overhead {level.p95_overhead * 1000:4.0f} ms"
            f"  lag {level.max_lag_s * 1000:4.0f} ms (callers' own {level.caller_lag_s * 1000:.0f})"
            f"  {level.cpu_per_call_minute:.2f} CPU s/call-min  {level.mb_per_call:.1f} MB/call"
            f"  failures {len(level.failures)}"
        )
        if not level.within(lone_p95):
            break
        await asyncio.sleep(2.0)  # let the last calls' teardown finish
    return done


def knee(levels: list[Level], lone_p95: float) -> Level:
    """The busiest level that still served callers like a lone caller."""
    good = [lv for lv in levels if lv.within(lone_p95)]
    return good[-1] if good else levels[0]


def median_ms(values: list[float]) -> float:
    """Median in milliseconds."""
    return statistics.median(values) * 1000
