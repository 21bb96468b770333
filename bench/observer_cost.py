"""What pipecat's observers cost a frame on its way through a call's graph.

    python -m bench.observer_cost [--frames 3000] [--processors 4] [--rounds 5]

A `PipelineWorker` runs `--processors` processors that pass every frame on, and `--frames`
40 ms caller-audio frames are queued into it (a call's inbound path: transport, STT, user
aggregator, sink). Side by side, the modes take turns `--rounds` times; each figure is the
median of its rounds, in CPU µs per frame (`time.process_time`, this process):

- *no observer*: `idle_timeout_secs=None`, no observers;
- *idle watchdog*: pipecat's default `idle_timeout_secs` (its `IdleFrameObserver`);
- *one observer, first pushes*: an observer that does nothing, `observe_every_push=False`;
- *one observer, every push*: the same, told of every push (as a call's recorder is).

pipecat's `WorkerObserver` queues every processed frame and every (first) push to each
observer's own task, whether or not the observer looks at it: the cost is per observer, per
processor, per frame.
"""

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass

from loguru import logger
from pipecat.frames.frames import EndFrame, Frame, InputAudioRawFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import IDLE_TIMEOUT_SECS, PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

FRAME_AUDIO = bytes(640)  # 40 ms at 8 kHz
BURST = 50  # frames queued between yields to the loop (the graph keeps up)


@dataclass(frozen=True)
class Mode:
    """One way of running the graph."""

    name: str
    idle_timeout_secs: float | None = None
    observer: bool = False
    every_push: bool = False


MODES = [
    Mode("no observer"),
    Mode("idle watchdog", idle_timeout_secs=IDLE_TIMEOUT_SECS),
    Mode("one observer, first pushes", observer=True),
    Mode("one observer, every push", observer=True, every_push=True),
]


class PassOn(FrameProcessor):
    """Passes every frame on."""

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Pass `frame` on."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class Idle(BaseObserver):
    """Looks at nothing."""

    async def on_push_frame(self, data: FramePushed):
        """Ignore the push."""


async def cpu_per_frame(mode: Mode, frames: int, processors: int) -> float:
    """CPU µs per frame through the graph in `mode`."""
    observers = [Idle(observe_every_push=mode.every_push)] if mode.observer else []
    worker = PipelineWorker(
        Pipeline([PassOn() for _ in range(processors)]),
        params=PipelineParams(),
        observers=observers,
        enable_rtvi=False,
        enable_turn_tracking=False,
        idle_timeout_secs=mode.idle_timeout_secs,
    )

    async def feed() -> float:
        await asyncio.sleep(0.3)  # started
        started = time.process_time()
        for n in range(frames):
            await worker.queue_frame(InputAudioRawFrame(FRAME_AUDIO, 8000, 1))
            if n % BURST == 0:
                await asyncio.sleep(0)
        await asyncio.sleep(0.5)  # the last frames are through
        spent = time.process_time() - started
        await worker.queue_frame(EndFrame())
        return spent

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    fed = asyncio.create_task(feed())
    await runner.run()
    return await fed / frames * 1e6


async def run(frames: int, processors: int, rounds: int) -> dict[str, float]:
    """Each mode's median µs per frame over `rounds` interleaved rounds."""
    samples: dict[str, list[float]] = {mode.name: [] for mode in MODES}
    for _ in range(rounds):
        for mode in MODES:
            samples[mode.name].append(await cpu_per_frame(mode, frames, processors))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--processors", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logger.remove()
    figures = asyncio.run(run(args.frames, args.processors, args.rounds))
    base = figures[MODES[0].name]
    print(f"{args.frames} frames through {args.processors} processors, median of {args.rounds}")
    print("| graph | CPU µs a frame | × no observer |\n| --- | --- | --- |")
    for name, us in figures.items():
        print(f"| {name} | {us:.1f} | {us / base:.2f} |")


if __name__ == "__main__":
    main()
