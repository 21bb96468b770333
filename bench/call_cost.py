"""What a call costs the server in CPU: once per call, and per second of a quiet or busy line.

    python -m bench.call_cost [--calls N] [--quiet-secs S]    (or: make call-cost) → CALL_COST.md

One server process (ours, the shipped default pipeline but for the silent-caller prompt),
the stand-ins at the bench's latencies, and `--calls` simultaneous simulated callers in three
rounds, the server's CPU read before and after each:

- *set-up*: dial, hear the greeting, hang up: the cost of a call's start and end;
- *quiet line*: the same, then `--quiet-secs` of silence from the caller (Twilio still sends
  50 packets a second: the VAD, the STT socket and the transport never rest);
- *conversation*: the bench's conversation (recorded speech, the bot's replies).

CPU seconds per call-second are given raw (the round's CPU over its call-seconds) and with
the set-up's share taken out: two measurements of one bot differ by how long and how busy
their calls are, and this says by how much.
"""

import argparse
import asyncio
import datetime
import os
import platform
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.conversation import Expectation, ServiceLatencies, conversation
from bench.profile import record, summarize
from bench.report import cpu_model
from bench.servers import BotServer, ours, running
from pipelines.declaration import PIPELINES_DIR
from standins.script import dial
from standins.stack import StandIns, running_standins


@dataclass
class Round:
    """One round: its calls, their seconds in all, and the server's CPU seconds."""

    name: str
    calls: int
    call_secs: float
    cpu_s: float

    @property
    def per_call_s(self) -> float:
        """CPU seconds per call."""
        return self.cpu_s / self.calls

    @property
    def per_call_second(self) -> float:
        """CPU seconds per second of call, set-up included."""
        return self.cpu_s / self.call_secs


async def greeted(url: str, quiet_secs: float = 0.0) -> float:
    """A call that hears the greeting, stays `quiet_secs` on the line, hangs up: its seconds."""
    call = await dial(url)
    try:
        await call.listen(timeout=15)
        await asyncio.sleep(quiet_secs)
        return call.now()
    finally:
        await call.hang_up()


async def talked(url: str, expected: Expectation) -> float:
    """The bench's conversation: its seconds."""
    return (await conversation(url, expected)).seconds


async def measure(server: BotServer, name: str, calls: int, make_call) -> Round:
    """`calls` simultaneous calls of one kind (starts spread over a second)."""
    await asyncio.sleep(1.0)  # the previous round's calls have closed
    before = server.usage().cpu_s
    rng = random.Random(calls)

    async def staggered() -> float:
        await asyncio.sleep(rng.uniform(0, 1.0))
        return await make_call()

    seconds = await asyncio.gather(*(staggered() for _ in range(calls)))
    await asyncio.sleep(1.0)  # their endings are in the reading
    return Round(name, calls, sum(seconds), server.usage().cpu_s - before)


def quiet_pipelines(directory: Path) -> Path:
    """The shipped pipelines with a silent caller never prompted within the quiet round."""
    for source in PIPELINES_DIR.glob("*.toml"):
        text = source.read_text().replace("silence_prompt_secs = 10", "silence_prompt_secs = 300")
        (directory / source.name).write_text(text)
    return directory


async def run(calls: int, quiet_secs: float) -> tuple[list[Round], list[str]]:
    """The three rounds against one fresh server process, and the quiet line's profile."""
    latencies = ServiceLatencies()
    with tempfile.TemporaryDirectory() as pipelines:
        bot = ours(1, 0.0, pipelines=quiet_pipelines(Path(pipelines)))
        async with running_standins(**latencies.standins()) as standins:
            async with running(bot, standins.env()) as server:
                return await _rounds(server, standins, latencies, calls, quiet_secs)


async def _rounds(
    server: BotServer, standins: StandIns, latencies: ServiceLatencies, calls: int, quiet: float
) -> tuple[list[Round], list[str]]:
    expected = Expectation(turn_end_s=0.0, vad_stop_s=0.0, services=latencies)
    await greeted(server.url)  # warm-up: first-call costs are not a call's
    setup = await measure(server, "set-up", calls, lambda: greeted(server.url))
    sampled = asyncio.create_task(_sample_quiet_line(server, quiet))
    quiet_line = await measure(server, "quiet line", calls, lambda: greeted(server.url, quiet))
    talk = await measure(server, "conversation", calls, lambda: talked(server.url, expected))
    return [setup, quiet_line, talk], await sampled


async def _sample_quiet_line(server: BotServer, quiet: float) -> list[str]:
    """py-spy of the busiest server process while the quiet calls are all on the line."""
    await asyncio.sleep(8.0)  # every call greeted, the line quiet
    busiest = max(server.processes(), key=lambda p: sum(p.cpu_times()[:2]))
    raw = Path(tempfile.mkdtemp(prefix="call-cost-")) / "quiet.txt"
    seconds = max(quiet - 12.0, 5.0)
    await record(busiest.pid, seconds, raw)
    summary = summarize(raw) if raw.exists() else None
    if not summary:
        return ["(py-spy took no samples)"]
    by_category, by_function = summary
    lines = [f"py-spy, {seconds:.0f} s at 200 Hz while the quiet calls were on the line:", ""]
    lines += ["| what | share of samples |", "| --- | --- |"]
    lines += [f"| {name} | {share:.0%} |" for name, share in by_category]
    lines += ["", "| function (own time) | share of samples |", "| --- | --- |"]
    return lines + [f"| {name} | {share:.1%} |" for name, share in by_function]


def table(rounds: list[Round]) -> list[str]:
    """The rounds as a Markdown table, with the set-up's share taken out."""
    setup = rounds[0]
    lines = [
        "| round | calls | seconds a call | CPU s a call | CPU s per call-second |"
        " same, set-up taken out |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rounds:
        steady = ""
        if r is not setup:
            extra_s = r.call_secs - setup.call_secs * r.calls / setup.calls
            steady = f"{(r.cpu_s - setup.per_call_s * r.calls) / extra_s:.4f}"
        lines.append(
            f"| {r.name} | {r.calls} | {r.call_secs / r.calls:.1f} | {r.per_call_s:.3f} |"
            f" {r.per_call_second:.4f} | {steady} |"
        )
    return lines


def report(rounds: list[Round], profile: list[str], command: str) -> str:
    """CALL_COST.md: where and how it was measured, the table, the quiet line's profile."""
    memory = psutil.virtual_memory().total / 2**30
    machine = f"{cpu_model() or platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB"
    return "\n".join(
        [
            "# What a call costs the server",
            "",
            f"- date: {datetime.date.today().isoformat()}",
            f"- machine: {machine}, Python {platform.python_version()}",
            f"- command: `{command}`: one server process, the stand-ins and the callers on "
            "this machine",
            "",
            *table(rounds),
            "",
            "*seconds a call*: from the stream's start to the hang-up; *set-up taken out*: the "
            "round's CPU less the set-up round's per call, over the seconds past the set-up's.",
            "",
            *profile,
            "",
        ]
    )


def main() -> None:
    """Run the rounds; print the report and write it to `--out`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--quiet-secs", type=float, default=30.0)
    parser.add_argument("--out", default="CALL_COST.md")
    args = parser.parse_args()
    command = f"python -m bench.call_cost --calls {args.calls} --quiet-secs {args.quiet_secs:g}"
    text = report(*asyncio.run(run(args.calls, args.quiet_secs)), command)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
