"""Benchmarks at the caller's end of the line, our bot and stock Pipecat side by side.

    python -m bench                   (or: make bench)  → BENCHMARKS.md
    python -m bench --smoke --out F   one short pass of everything (CI runs it)
    python -m bench --only-capacity --bots ours,before --before ../old --levels 8,16,24
                                      capacity levels only, the bots taking turns

Starts the stand-ins with the service latencies given, starts each bot as its own server
process pointed at them, and drives simulated Twilio callers with recorded speech.
"""

import argparse
import asyncio
import atexit
import os
import shutil
import sys
import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from bench import capacity, replies, report
from bench.capacity import Level
from bench.conversation import (
    CALLER_TURNS,
    BargeIn,
    CallResult,
    Expectation,
    ServiceLatencies,
    barge_in,
    conversation,
    long_reply_to_bookings,
    receptionist,
)
from bench.profile import record, summarize
from bench.replies import ReplyRun
from bench.servers import Bot, BotServer, ours, running, stock
from bench.soak import Soak, soak
from pipelines.declaration import Turn, load_declarations
from server.heap import freeze_startup_heap
from standins.openai_replies import LONG_REPLY
from standins.speech import synthesize
from standins.stack import StandIns, running_standins

CORES = len(os.sched_getaffinity(0))
WARM_UP = 2  # first calls of a server (one per worker, likely): not counted but the greeting
PROFILED_CALLS = 16  # per worker process (or the knee, if lower) while one worker is sampled


@dataclass
class BotFigures:
    """Everything measured of one bot."""

    bot: Bot
    cores: int  # cores its processes can use
    calls: list[CallResult] = field(default_factory=list)
    barge_ins: list[BargeIn] = field(default_factory=list)
    levels: list[Level] = field(default_factory=list)
    soak: Soak | None = None
    profile: tuple[list, list] | None = None
    profiled_calls: int = 0
    first_greeting_s: float = 0.0  # on the server's very first call

    @property
    def lone_p95(self) -> float:
        """p95 reply overhead of the calls made one at a time: the capacity baseline."""
        return capacity.p95([t.overhead_s for c in self.calls for t in c.turns])

    @property
    def knee(self) -> Level:
        """The capacity knee."""
        return capacity.knee(self.levels, self.lone_p95)


def parse() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = ServiceLatencies()
    parser.add_argument("--stt-final", type=float, default=defaults.stt_final_s)
    parser.add_argument("--llm-ttft", type=float, default=defaults.llm_ttft_s)
    parser.add_argument("--llm-rate", type=float, default=defaults.llm_tokens_per_s)
    parser.add_argument("--tts-ttfb", type=float, default=defaults.tts_ttfb_s)
    parser.add_argument("--calls", type=int, default=8, help="sequential measured calls")
    parser.add_argument("--barge-ins", type=int, default=10)
    parser.add_argument("--levels", default="1,4,8,12,16,24,32,40,48,64,80,96")
    parser.add_argument("--spread", type=float, default=5.0, help="seconds to spread starts")
    parser.add_argument("--soak-calls", type=int, default=1000)
    parser.add_argument("--soak-at-once", type=int, default=8, help="soak calls on the line")
    parser.add_argument("--bots", default="ours,stock", help="ours, stock, before (see --before)")
    parser.add_argument(
        "--before", type=Path, help="another checkout of this project, measured as 'before'"
    )
    parser.add_argument("--reply-calls", type=int, default=6, help="calls per bot and LLM speed")
    parser.add_argument("--only-replies", action="store_true", help="print the reply table only")
    parser.add_argument(
        "--only-capacity",
        action="store_true",
        help="print the capacity table only: every level of --levels, the bots taking turns",
    )
    parser.add_argument("--smoke", action="store_true", help="one short pass of everything")
    parser.add_argument("--out", default="BENCHMARKS.md")
    args = parser.parse_args()
    if args.smoke:
        args.calls, args.barge_ins, args.levels, args.soak_calls = 1, 1, "1,2", 2
        args.soak_at_once = 2
        args.reply_calls = 1
    args.latencies = ServiceLatencies(args.stt_final, args.llm_ttft, args.llm_rate, args.tts_ttfb)
    return args


def turn_end_s(turn: Turn, end: str) -> float:
    """The silence after the voice a turn waits before it ends (a finished sentence's)."""
    wait = turn.smart_turn_complete_secs if end == "smart-turn" else turn.user_speech_timeout
    return turn.vad_stop_secs + wait


def bots(args: argparse.Namespace) -> list[tuple[Bot, Bot]]:
    """Each bot as benchmarked, and as soaked (one process, so tasks are one process's)."""
    default = load_declarations()["default"]
    ours_turn = turn_end_s(default.turn, default.turn_end)
    chosen = {
        "ours": (ours(CORES, ours_turn), ours(1, ours_turn)),
        "stock": (stock(0.2), stock(0.2)),  # VADParams' default stop_secs, then Smart Turn
    }
    if args.before:  # the same server from another checkout (e.g. the last release), side by side
        before = {"root": args.before.resolve(), "name": "before"}
        chosen["before"] = (ours(CORES, ours_turn, **before), ours(1, ours_turn, **before))
    return [chosen[name] for name in args.bots.split(",")]


async def measure(bot: Bot, args: argparse.Namespace) -> BotFigures:
    """Every figure for one bot, on freshly started stand-ins."""
    figures = BotFigures(bot, cores=min(bot.workers, CORES))
    utterances = CALLER_TURNS[:1] if args.smoke else CALLER_TURNS
    async with running_standins(**args.latencies.standins()) as standins:
        expected = Expectation(bot.turn_end_s, 0.2, args.latencies)
        async with running(bot, standins.env()) as server:
            warm = 1 if args.smoke else WARM_UP
            log(f"{bot.name}: {args.calls} calls one at a time, after {warm} to warm up")
            for _ in range(warm):
                warm_up = await conversation(server.url, expected, standins, utterances)
                figures.first_greeting_s = figures.first_greeting_s or warm_up.greeting_s
            for _ in range(args.calls):
                figures.calls.append(await conversation(server.url, expected, standins, utterances))
            log(f"{bot.name}: {args.barge_ins} barge-ins")
            figures.barge_ins = await _barge_ins(server, standins, args.barge_ins)
            log(f"{bot.name}: capacity")
            levels = [int(n) for n in args.levels.split(",")]
            figures.levels = await capacity.find_knee(
                server, standins, expected, levels, args.spread, figures.lone_p95, log=log
            )
            if not args.smoke:
                figures.profiled_calls = min(figures.knee.calls, PROFILED_CALLS * bot.workers)
                log(f"{bot.name}: profiling {figures.profiled_calls} calls")
                figures.profile = await _profile(server, standins, expected, figures, args)
    return figures


async def soak_one(soak_bot: Bot, figures: BotFigures, args: argparse.Namespace) -> None:
    """The soak of one bot, on its own stand-ins."""
    async with (
        running_standins(**args.latencies.standins()) as standins,
        running(soak_bot, standins.env()) as server,
    ):
        log(f"{soak_bot.name}: soak, {args.soak_calls} calls, {args.soak_at_once} at once")
        warm_up = 1 if args.smoke else 100
        figures.soak = await soak(
            server, args.soak_calls, warm_up, log=log, at_once=args.soak_at_once
        )


async def _barge_ins(server: BotServer, standins: StandIns, count: int) -> list[BargeIn]:
    """Cut LONG_REPLY at `count` points spread over it."""
    standins.openai.responder = long_reply_to_bookings
    length = synthesize(LONG_REPLY).duration_s
    cuts = [0.6 + i * (length - 2.0) / max(count - 1, 1) for i in range(count)]
    try:
        return [await barge_in(server.url, cut) for cut in cuts]
    finally:
        standins.openai.responder = receptionist


async def _profile(
    server: BotServer,
    standins: StandIns,
    expected: Expectation,
    figures: BotFigures,
    args: argparse.Namespace,
) -> tuple[list, list] | None:
    """Sample one worker process for 20 s while `figures.profiled_calls` calls run."""
    worker = server.processes()[-1]  # the server itself, or its last worker
    out = Path(tempfile.mkstemp(suffix=".raw")[1])
    calls = figures.profiled_calls  # the kernel shares them out among the workers
    level = asyncio.create_task(capacity.run_level(server, standins, expected, calls, args.spread))
    await asyncio.sleep(args.spread)
    await record(worker.pid, 20, out)
    await level
    return await asyncio.to_thread(summarize, out)


def log(line: str) -> None:
    """Progress, to stderr."""
    print(line, file=sys.stderr, flush=True)


async def run(args: argparse.Namespace) -> tuple[list[BotFigures], list[ReplyRun]]:
    """Measure each bot, soak them side by side (a call at a time each), compare replies."""
    chosen = bots(args)
    figures = [await measure(bot, args) for bot, _ in chosen]
    await asyncio.gather(*(soak_one(s, f, args) for (_, s), f in zip(chosen, figures, strict=True)))
    return figures, await reply_runs(args)


async def capacity_runs(args: argparse.Namespace) -> list[BotFigures]:
    """Every level of `--levels` for each bot (no stop at a knee), the bots taking turns.

    The servers run side by side on the same stand-ins; at each level the bots take turns,
    so a noisy minute of a shared machine falls on one level of both, not on one bot.
    """
    chosen = [bot for bot, _ in bots(args)]
    figures = [BotFigures(bot, cores=min(bot.workers, CORES)) for bot in chosen]
    async with running_standins(**args.latencies.standins()) as standins:
        async with AsyncExitStack() as servers:
            running_servers = [
                await servers.enter_async_context(running(bot, standins.env())) for bot in chosen
            ]
            expected = [Expectation(bot.turn_end_s, 0.2, args.latencies) for bot in chosen]
            for server, expectation in zip(running_servers, expected, strict=True):
                for _ in range(WARM_UP):
                    await conversation(server.url, expectation, standins)
            for calls in (int(n) for n in args.levels.split(",")):
                for server, expectation, bot_figures in zip(
                    running_servers, expected, figures, strict=True
                ):
                    log(f"{server.bot.name}: {calls} calls")
                    level = await capacity.run_level(
                        server, standins, expectation, calls, args.spread
                    )
                    bot_figures.levels.append(level)
                    await asyncio.sleep(2.0)  # the last calls' teardown
    return figures


async def reply_runs(args: argparse.Namespace) -> list[ReplyRun]:
    """Our default (speculative replies), the old one (without), and stock Pipecat."""
    # One process each: calls come one at a time, and its log says what each call speculated.
    old_default = replies.default_with(scratch(), replies.OLD_DEFAULT)
    compared = [ours(1, 0.6, name="ours, old default", pipelines=old_default), ours(1, 0.6)]
    compared.append(stock(0.2))
    runs = []
    for ttft in replies.TTFTS_S:
        for bot in compared:
            log(f"{bot.name}: replies, LLM first token {ttft * 1000:.0f} ms")
            runs.append(await replies.measure(bot, ttft, args.reply_calls))
    return runs


def scratch() -> Path:
    """A directory of its own, removed when the process exits."""
    directory = Path(tempfile.mkdtemp(prefix="bench-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def main() -> None:
    """Run the benchmarks and write the report."""
    args = parse()
    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("LOG_LEVEL", "ERROR"))
    freeze_startup_heap()  # the callers' own GC pauses would be heard as the bot's lag
    if args.only_replies:
        print(replies.table(asyncio.run(reply_runs(args))))
        return
    if args.only_capacity:
        print(report.levels_table(asyncio.run(capacity_runs(args))))
        return
    figures, reply_figures = asyncio.run(run(args))
    command = "python -m bench " + " ".join(sys.argv[1:])
    Path(args.out).write_text(report.markdown(figures, reply_figures, args, command.strip()))
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
