"""Silero VAD for many calls in one process: each window scored alone, or batched across calls.

    python -m bench.vad_batch [--calls 1 10 50 100] [--secs 10] [--rounds 1]

N tasks play the recordings in recordings/ in real time, each in 20 ms packets into its own
`SharedSileroVADAnalyzer`, as N calls on one server would (each call starts at a random
instant and a random place in its recording). Per call count, side by side in one run:

- *feeding only*: the same tasks with no VAD (their timers and the loop: subtracted);
- *alone*: every window scored at once, one `Session.run` each (before batching);
- *next turn*: the windows submitted in one event-loop turn scored together (`call_soon`);
- *N ms*: the windows submitted within N ms of the first one waiting scored together.

CPU is this process's (`time.process_time`) over the call-seconds played; *VAD* is that less
the feeding-only round's. With `--rounds` R, the modes take turns R times and each figure is
the median of its R rounds (the waits are pooled). *due → state* is from the packet's due
time to the VAD's answer: the loop's lateness (the calls scored before it) plus the wait for
its batch.
"""

import argparse
import asyncio
import random
import statistics
import sys
import time
from dataclasses import dataclass

from loguru import logger
from pipecat.audio.vad.vad_analyzer import VADState

from models.silero_batcher import SileroBatcher, shared_model
from models.silero_vad import SharedSileroVADAnalyzer
from recordings import RECORDINGS
from standins.audio import read_wav

PACKET_S = 0.02
RATE = 8000
PACKET_BYTES = round(PACKET_S * RATE) * 2


@dataclass
class Mode:
    """How the calls' windows are scored."""

    name: str
    vad: bool = True
    batched: bool = False
    delay: float = 0.0


MODES = [
    Mode("feeding only", vad=False),
    Mode("alone"),
    Mode("next turn", batched=True),
    Mode("2 ms", batched=True, delay=0.002),
    Mode("5 ms", batched=True, delay=0.005),
]


@dataclass
class Result:
    """One round: its CPU, its batches and how long each packet waited for its VAD state."""

    mode: str
    calls: int
    call_secs: float
    cpu_s: float
    runs: int
    windows: int
    largest: int
    waits: list[float]

    @property
    def cpu_ms_per_call_second(self) -> float:
        """CPU milliseconds per second of call."""
        return 1000 * self.cpu_s / self.call_secs

    @property
    def per_run(self) -> float | None:
        """Windows scored per `Session.run` (None: not batched)."""
        return self.windows / self.runs if self.runs else None


class NoVAD:
    """Takes the packet and answers at once: the feeding's own cost."""

    async def analyze_audio(self, buffer: bytes) -> VADState:
        """Quiet, always."""
        return VADState.QUIET


def recordings() -> list[bytes]:
    """The 8 kHz recordings, each a whole number of packets."""
    found = [read_wav(path) for path in sorted(RECORDINGS.glob("*.wav"))]
    return [pcm[: len(pcm) - len(pcm) % PACKET_BYTES] for pcm in found]


async def call(vad, pcm: bytes, start: float, secs: float, offset: int, waits: list[float]):
    """Play `secs` of `pcm` (looped, from packet `offset`) into `vad`, a packet every 20 ms."""
    loop = asyncio.get_running_loop()
    packets = len(pcm) // PACKET_BYTES
    for k in range(round(secs / PACKET_S)):
        due = start + k * PACKET_S
        await asyncio.sleep(due - loop.time())
        at = (offset + k) % packets * PACKET_BYTES
        await vad.analyze_audio(pcm[at : at + PACKET_BYTES])
        waits.append(loop.time() - due)


async def measure(mode: Mode, calls: int, secs: float, seed: int) -> Result:
    """`calls` calls for `secs` each, all on the line together, scored as `mode` says."""
    rng = random.Random(seed)
    pcms = recordings()
    batcher = SileroBatcher(delay=mode.delay)
    vads = []
    for _ in range(calls):
        if not mode.vad:
            vads.append(NoVAD())
            continue
        vad = SharedSileroVADAnalyzer(
            sample_rate=RATE, batched=mode.batched, batcher=batcher if mode.batched else None
        )
        vad.set_sample_rate(RATE)
        vads.append(vad)
    waits: list[float] = []
    begin = asyncio.get_running_loop().time() + 0.2
    tasks = [
        call(
            vad,
            pcms[i % len(pcms)],
            begin + rng.uniform(0, PACKET_S),
            secs,
            rng.randrange(len(pcms[i % len(pcms)]) // PACKET_BYTES),
            waits,
        )
        for i, vad in enumerate(vads)
    ]
    cpu = time.process_time()
    await asyncio.gather(*tasks)
    cpu = time.process_time() - cpu
    return Result(
        mode.name,
        calls,
        calls * secs,
        cpu,
        batcher.runs,
        batcher.windows,
        batcher.largest,
        waits,
    )


def p99(values: list[float]) -> float:
    """The 99th percentile."""
    return statistics.quantiles(values, n=100)[98]


def table(results: list[Result]) -> str:
    """The results as a Markdown table, the VAD's own CPU next to the unbatched one's."""
    feeding = {r.calls: r.cpu_ms_per_call_second for r in results if r.mode == "feeding only"}
    alone = {
        r.calls: r.cpu_ms_per_call_second - feeding.get(r.calls, 0)
        for r in results
        if r.mode == "alone"
    }
    lines = [
        "| calls | scoring | CPU ms per call-s | VAD ms per call-s | VAD vs alone "
        "| windows per run | largest run | due → state mean ms | p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        vad = r.cpu_ms_per_call_second - feeding.get(r.calls, 0)
        versus = f"{vad / alone[r.calls]:.2f}" if r.mode != "feeding only" else ""
        per_run = f"{r.per_run:.1f}" if r.per_run else ""
        largest = str(r.largest) if r.runs else ""
        lines.append(
            f"| {r.calls} | {r.mode} | {r.cpu_ms_per_call_second:.2f} "
            f"| {vad:.2f} | {versus} | {per_run} | {largest} "
            f"| {1000 * statistics.fmean(r.waits):.2f} | {1000 * p99(r.waits):.2f} |"
        )
    return "\n".join(lines)


def median(rounds: list[Result]) -> Result:
    """The rounds of one mode and call count as one: median CPU and batches, waits pooled."""
    cpu = statistics.median(r.cpu_s for r in rounds)
    runs = statistics.median(r.runs for r in rounds)
    windows = statistics.median(r.windows for r in rounds)
    largest = max(r.largest for r in rounds)
    waits = [w for r in rounds for w in r.waits]
    first = rounds[0]
    return Result(first.mode, first.calls, first.call_secs, cpu, runs, windows, largest, waits)


async def main(call_counts: list[int], secs: float, rounds: int) -> None:
    """Every mode at every call count, taking turns, in this process."""
    shared_model()  # loaded before any round's CPU is read
    results = []
    for calls in call_counts:
        measured: dict[str, list[Result]] = {mode.name: [] for mode in MODES}
        for n in range(rounds):
            for mode in MODES:
                measured[mode.name].append(await measure(mode, calls, secs, seed=calls + n))
                print(f"{calls} calls, {mode.name}: round {n + 1}", file=sys.stderr)
        results += [median(measured[mode.name]) for mode in MODES]
    print(table(results))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 10, 50, 100])
    parser.add_argument("--secs", type=float, default=10.0, help="seconds each call plays")
    parser.add_argument("--rounds", type=int, default=1, help="turns each mode takes")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    asyncio.run(main(args.calls, args.secs, args.rounds))
