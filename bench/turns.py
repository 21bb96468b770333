"""When does the caller's turn end? Silero VAD + a speech timeout vs Smart Turn v3, measured.

    python -m bench.turns             (or: make turns)  → TURNS.md
    python -m bench.turns --quick     one short recording; prints the tables (--out to write)

Plays the recordings in recordings/ in real time, as a call hears them (μ-law, 20 ms packets),
into the bot's own turn detection: pipecat's user aggregator with the VAD analyzer and turn
strategies `pipelines.build` gives a call. Real time, because the strategies' timers are
asyncio sleeps and Smart Turn stamps its audio with `time.monotonic()`: a simulated clock
would not reach them. A perfect recognizer finalizes each stretch of voice as it ends, so the
figures are turn detection's own; a real one adds its delay to both kinds of turn end.
"""

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from loguru import logger
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    MetricsFrame,
    StartFrame,
    TranscriptionFrame,
    UserStoppedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import TurnMetricsData
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.utils.time import time_now_iso8601
from pipecat.workers.runner import WorkerRunner

from bench.capacity import p95
from bench.conversation import TRANSCRIPTS
from pipelines.build import SAMPLE_RATE, call_context, turns, vad_analyzer
from pipelines.declaration import PIPELINES_DIR, Declaration, load_declaration
from recordings import RECORDINGS
from standins.audio import read_wav
from telephony.lifecycle import CallLifecycle
from telephony.mulaw import pcm_to_ulaw, ulaw_to_pcm

DATA = RECORDINGS
LONG = ["silero_test_8k", "aepyx_8k_60s"]  # real speech, 60 s each, cut mid-sentence
SHORT = ["book_table", "opening_hours", "cancel", "yes", "goodbye"]  # one utterance each
QUICK = ["cancel"]  # it has sentence pauses: the quick run meets a chance of a false end
PACKET_S = 0.02
LEAD_S = 0.5  # silence before the speech
TAIL_S = 1.5  # silence after the fallback: every turn ends before the audio does
HOP_S = 0.01  # ground truth: 10 ms levels
WORD_GAP_S = 0.1  # silences shorter than this are inside words (stop closures)
UTTERANCE_GAP_S = 1.0  # a pause at least this long ends an utterance (see METHOD)
# The bot's quickest reply after a turn end (BENCHMARKS.md, with fast stand-ins: LLM to the
# first sentence ~290 ms, TTS ~125 ms, to the ear ~15 ms): a caller still silent this long
# after a false turn end hears the bot start speaking over their unfinished utterance.
REPLY_S = 0.45
PAUSE_BINS = [(0.1, 0.3), (0.3, 0.5), (0.5, 0.7), (0.7, 1.0), (1.0, 60.0)]

METHOD = f"""\
**How it is measured.** Each recording is played in real time, as a call hears it (μ-law, 20 ms
packets, {LEAD_S:g} s of silence before), into the bot's own turn detection: pipecat's
`LLMUserAggregator` with the VAD analyzer (`SharedSileroVADAnalyzer`) and the turn strategies
`pipelines.build` gives a call (`SilenceTimedTurnStopStrategy`, or
`TurnAnalyzerUserTurnStopStrategy` over `SharedSmartTurnAnalyzerV3`), all at the default
pipeline's `[turn]` settings but the one changed. A turn end is the aggregator's
`UserStoppedSpeakingFrame`. Real time, not a simulated clock: the strategies' timers are asyncio
sleeps and Smart Turn stamps its audio with `time.monotonic()`. Smart Turn runs alone (the
speech-timeout runs ride along with one of its runs), so its inferences do not queue behind each
other. A perfect recognizer finalizes each stretch of voice the moment it ends, so the figures
are turn detection's own; Deepgram adds its Finalize round trip to either. Its words are the
recording's text at a short recording's end and "…" elsewhere: the long recordings have no
transcript, so on them Smart Turn decides on the sound alone, as the "sound alone" row does
everywhere (a language without a word list).

**Ground truth** comes from the audio level, not from either detector: 10 ms frames are voice
when louder than both the recording's noise floor (10th percentile) + 10 dB and its loud voice
(95th percentile) − 35 dB; silences under {WORD_GAP_S * 1000:.0f} ms are inside words. A short
recording is one utterance with known text: its end is the end of the voice, and any turn end
before it is false. In the long recordings (one person reading on) an utterance ends at a
pause of at least {UTTERANCE_GAP_S:g} s: about the longest silence conversation leaves before
someone speaks (Jefferson's "standard maximum" of ~1 s), three times the sentence pauses of the
short recordings (≤ 0.34 s). A turn end at a shorter pause, or inside the voice, is false; an
utterance end at which the turn did not end before the voice resumed is missed. A false end
is *heard* when the caller stayed silent at least {REPLY_S:g} s after it, the bot's quickest
reply in BENCHMARKS.md: the bot starts speaking over an unfinished utterance (slower real
providers make fewer of them heard); the others cost an LLM request the caller never notices.
The long recordings are cut mid-sentence at 60 s: their last voice end is not counted. The
pause table shows every pause, so another threshold can be read off it. Latency is from the
end of the voice to the turn end. Caveats: the utterance ends are few (counted above); the short
recordings are espeak-ng voices, not the human speech Smart Turn was trained on; the long ones
are one person reading, not a caller in a dialogue.

**Costs.** Smart Turn infers once per VAD stop, on an 8 s window whatever the speech, on a
thread of its own (`run_in_executor`): the event loop stays free, but that call's aggregator
waits for the verdict, and the CPU is taken from every call on the machine. The probes run in
fresh processes: memory after every analyzer has inferred at once, the worst case, as each
inference running alongside others keeps its own onnxruntime and malloc arena (PSS counts
shared pages once; `SharedSmartTurnAnalyzerV3` runs at most one inference per CPU); CPU
as process time, so it includes OpenBLAS's helper thread, which numpy's matrix product in the
feature extractor wakes unless `OPENBLAS_NUM_THREADS=1`. Inference times inside the runs
above are longer than the probe's when the machine is busy."""


@dataclass(frozen=True)
class Recording:
    """A recording and where its voice is (seconds)."""

    name: str
    pcm: bytes
    voice: list[tuple[float, float]]
    cut: bool  # ends mid-speech: its last voice end is not an utterance end
    text: str = ""  # what a short recording says (recordings/transcripts.txt)

    @property
    def pauses(self) -> list[float]:
        """The length of each silence between voiced spans (the k-th follows span k)."""
        return [b[0] - a[1] for a, b in zip(self.voice, self.voice[1:], strict=False)]

    def ends_utterance(self, span: int) -> bool:
        """Whether the speaker finished an utterance at the end of voiced span `span`."""
        if span == len(self.voice) - 1:
            return not self.cut
        return self.pauses[span] >= UTTERANCE_GAP_S


def voice_spans(pcm: bytes) -> list[tuple[float, float]]:
    """The voiced spans of 8 kHz PCM by level (see METHOD)."""
    hop = round(HOP_S * SAMPLE_RATE)
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    frames = samples[: len(samples) // hop * hop].reshape(-1, hop)
    level = 20 * np.log10(np.maximum(np.sqrt((frames**2).mean(axis=1)), 1.0) / 32768)
    floor, loud = np.percentile(level, [10, 95])
    voiced = np.concatenate([[0], level > max(floor + 10, loud - 35), [0]]).astype(int)
    edges = np.flatnonzero(np.diff(voiced)) * HOP_S
    spans: list[tuple[float, float]] = []
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if spans and start - spans[-1][1] < WORD_GAP_S:
            spans[-1] = (spans[-1][0], float(end))
        else:
            spans.append((float(start), float(end)))
    return spans


def load_recording(name: str) -> Recording:
    """A recording of recordings/ with its ground truth."""
    pcm = read_wav(DATA / f"{name}.wav")
    spans = voice_spans(pcm)
    cut = spans[-1][1] > len(pcm) / 2 / SAMPLE_RATE - WORD_GAP_S
    return Recording(name, pcm, spans, cut, TRANSCRIPTS.get(name, ""))


@dataclass(frozen=True)
class Config:
    """One way to end turns: the default pipeline's [turn] with `end` and its knob changed."""

    label: str
    declaration: Declaration

    @property
    def smart_turn(self) -> bool:
        """Whether Smart Turn v3 judges the pauses."""
        return self.declaration.turn_end == "smart-turn"


def configs(base: Declaration) -> list[Config]:
    """Speech timeouts around the old default's, and Smart Turn v3 with waits around ours.

    "(ours)" marks the default pipeline's way.
    """
    turn = base.turn

    def config(label: str, **changes) -> Config:
        declaration = replace(base, turn=turn.model_copy(update=changes))
        ours = declaration.turn == turn
        return Config(label + (" (ours)" if ours else ""), declaration)

    timeouts = sorted({0.2, 0.4, turn.user_speech_timeout, 0.8})
    # (finished, unfinished, below which it is sure): unsure verdicts get the speech timeout
    waits = sorted(
        {(0.2, 1.5, 0.5), (0.3, 1.0, 0.5), (0.3, 1.0, 0.1)}
        | {
            (
                turn.smart_turn_complete_secs,
                turn.smart_turn_max_secs,
                turn.smart_turn_unfinished_below,
            )
        }
    )
    return [
        *(
            config(f"speech timeout {t:g} s", end="speech-timeout", user_speech_timeout=t)
            for t in timeouts
        ),
        *(
            config(
                _smart_label(done, most, below, turn.user_speech_timeout),
                end="smart-turn",
                smart_turn_complete_secs=done,
                smart_turn_max_secs=most,
                smart_turn_unfinished_below=below,
            )
            for done, most, below in waits
        ),
        # Ours on the sound alone: a language without a word list (model_copy: no lines for it)
        Config(
            _smart_label(
                turn.smart_turn_complete_secs,
                turn.smart_turn_max_secs,
                turn.smart_turn_unfinished_below,
                turn.user_speech_timeout,
            )
            + ", sound alone",
            replace(base, bot=base.bot.model_copy(update={"language": "und"})),
        ),
    ]


def _smart_label(done: float, most: float, below: float, unsure: float) -> str:
    if below >= 0.5:
        return f"Smart Turn: {done:g} s finished, {most:g} s not"
    return f"Smart Turn: {done:g} s finished, {most:g} s if p < {below:g}, else {unsure:g} s"


class TurnLog(FrameProcessor):
    """Notes turn ends, VAD stops and Smart Turn's verdicts, in seconds of the recording."""

    def __init__(self, clock):
        """`clock()`: the recording's time now."""
        super().__init__()
        self._clock = clock
        self.started = asyncio.Event()
        self.turn_ends: list[float] = []
        self.vad_stops: list[float] = []
        self.verdicts: list[tuple[float, TurnMetricsData]] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Note the frame's time if it is one of ours; pass everything on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self.started.set()
        elif isinstance(frame, UserStoppedSpeakingFrame):
            self.turn_ends.append(self._clock())
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self.vad_stops.append(self._clock())
        elif isinstance(frame, MetricsFrame):
            verdicts = [d for d in frame.data if isinstance(d, TurnMetricsData)]
            self.verdicts += [(self._clock(), d) for d in verdicts]
        await self.push_frame(frame, direction)


@dataclass
class Run:
    """One recording through one config: what its turn detection did, and when (s)."""

    recording: Recording
    config: Config
    turn_ends: list[float] = field(default_factory=list)
    vad_stops: list[float] = field(default_factory=list)
    verdicts: list[tuple[float, TurnMetricsData]] = field(default_factory=list)


def _user_aggregator(declaration: Declaration) -> FrameProcessor:
    """The call's user aggregator, with the VAD and turn strategies the bot builds."""
    vad = vad_analyzer(declaration.turn)
    _context, aggregators = call_context(declaration, turns(declaration, vad), CallLifecycle(), vad)
    return aggregators.user()


def _packets(recording: Recording, tail_s: float) -> list[tuple[float, Frame]]:
    """(when, frame): 20 ms packets as the call hears them, each transcript as its voice ends."""
    pad = bytes(2 * round(LEAD_S * SAMPLE_RATE))
    audio = ulaw_to_pcm(pcm_to_ulaw(pad + recording.pcm + bytes(2 * round(tail_s * SAMPLE_RATE))))
    size = 2 * round(PACKET_S * SAMPLE_RATE)
    timed: list[tuple[float, Frame]] = [
        # A packet arrives when its last sample has been spoken.
        ((n + 1) * PACKET_S - LEAD_S, InputAudioRawFrame(audio[i : i + size], SAMPLE_RATE, 1))
        for n, i in enumerate(range(0, len(audio) - size + 1, size))
    ]
    for n, (_, end) in enumerate(recording.voice):  # after the packet that ends the voice
        # Words only where they are known (a short recording's end): "…" says nothing.
        said = recording.text if n == len(recording.voice) - 1 and recording.text else "…"
        text = TranscriptionFrame(said, "caller", time_now_iso8601(), finalized=True)
        timed.append((math.ceil(round(end / PACKET_S, 6)) * PACKET_S, text))
    return sorted(timed, key=lambda pair: pair[0])


async def run(recording: Recording, config: Config) -> Run:
    """Play `recording` in real time into `config`'s turn detection."""
    loop = asyncio.get_running_loop()
    start = loop.time() + 3600.0  # set when the audio starts
    log = TurnLog(lambda: loop.time() - start)
    worker = PipelineWorker(
        Pipeline([_user_aggregator(config.declaration), log]),
        params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE),
        enable_rtvi=False,
        enable_turn_tracking=False,
        idle_timeout_secs=None,
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    await asyncio.wait_for(log.started.wait(), 10)
    packets = _packets(recording, config.declaration.turn.smart_turn_max_secs + TAIL_S)
    start = loop.time() + LEAD_S
    for when, frame in packets:
        await asyncio.sleep(max(0.0, start + when - loop.time()))
        await worker.queue_frame(frame)
    await worker.stop_when_done()
    await running
    return Run(recording, config, log.turn_ends, log.vad_stops, log.verdicts)


async def run_all(recordings: list[Recording], configs: list[Config], log=print) -> list[Run]:
    """Every recording through every config; one Smart Turn config at a time."""
    smart = [c for c in configs if c.smart_turn]
    rounds = [[c for c in configs if not c.smart_turn]]
    rounds = [rounds[0] + smart[:1], *([c] for c in smart[1:])] if smart else rounds
    runs: list[Run] = []
    for group in rounds:
        for recording in recordings:
            log(f"  {recording.name}: {', '.join(c.label for c in group)}", flush=True)
            runs += await asyncio.gather(*(run(recording, c) for c in group))
    return runs


@dataclass
class Score:
    """What one config did on a set of recordings."""

    latencies: list[float] = field(default_factory=list)  # voice end → turn end, per utterance
    vad_lags: list[float] = field(default_factory=list)  # voice end → VAD stop, per utterance
    missed: int = 0
    false_ends: dict[str, int] = field(default_factory=dict)  # per recording
    heard: dict[str, int] = field(default_factory=dict)  # of those, the bot speaks over them
    pauses_ended: dict[tuple[float, float], list[int]] = field(default_factory=dict)  # [ended, of]


def score(runs: list[Run]) -> Score:
    """The figures of one config's runs against the ground truth."""
    result = Score()
    for r in runs:
        _score_run(r, result)
    return result


def _score_run(r: Run, result: Score) -> None:
    voice, first_end = r.recording.voice, {}
    false_ends = heard = 0
    for t in r.turn_ends:
        span = _span_before(voice, t)
        resumes = voice[span + 1][0] if span + 1 < len(voice) else math.inf
        if span == len(voice) - 1 and r.recording.cut:
            continue  # after the cut: no ground truth
        if span < 0 or t >= resumes:  # the caller was already speaking again
            false_ends += 1
            continue
        if span in first_end or not r.recording.ends_utterance(span):
            false_ends += 1
            heard += resumes - t >= REPLY_S
        first_end.setdefault(span, t)
    result.false_ends[r.recording.name] = false_ends
    result.heard[r.recording.name] = heard
    for span, (_, end) in enumerate(voice):
        if not r.recording.ends_utterance(span):
            continue
        if span not in first_end:
            result.missed += 1
            continue
        result.latencies.append(first_end[span] - end)
        stops = [s for s in r.vad_stops if s >= end]
        if stops:
            result.vad_lags.append(stops[0] - end)
    for span, pause in enumerate(r.recording.pauses):
        for low, high in PAUSE_BINS:
            if low <= pause < high:
                tally = result.pauses_ended.setdefault((low, high), [0, 0])
                tally[0] += span in first_end
                tally[1] += 1


def _span_before(voice: list[tuple[float, float]], t: float) -> int:
    """The index of the last voiced span that ended at or before `t` (-1: none)."""
    ended = [k for k, (_, end) in enumerate(voice) if end <= t]
    return ended[-1] if ended else -1


def probe_memory(kind: str, count: int) -> dict:
    """Memory and load time of `count` Smart Turn analyzers after they all infer at once."""
    import psutil
    from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

    from models.smart_turn import SharedSmartTurnAnalyzerV3

    make = LocalSmartTurnAnalyzerV3 if kind == "pipecat" else SharedSmartTurnAnalyzerV3
    process = psutil.Process()
    before = process.memory_full_info()
    loads, analyzers = [], []
    for _ in range(count):
        started = time.perf_counter()
        analyzers.append(make(sample_rate=SAMPLE_RATE))
        loads.append(time.perf_counter() - started)
    speech = read_wav(DATA / "book_table.wav")
    for analyzer in analyzers:
        analyzer.set_sample_rate(SAMPLE_RATE)
        _append(analyzer, speech)

    async def infer_at_once():  # the worst case: every call's caller pauses together
        await asyncio.gather(*(analyzer.analyze_end_of_turn() for analyzer in analyzers))

    asyncio.run(infer_at_once())
    after = process.memory_full_info()
    return {
        "rss_mb": (after.rss - before.rss) / 2**20,
        "pss_mb": (after.pss - before.pss) / 2**20,
        "first_load_ms": loads[0] * 1000,
        "next_load_ms": statistics.mean(loads[1:]) * 1000 if count > 1 else 0.0,
    }


def probe_cpu(inferences: int) -> dict:
    """Wall and CPU time of Smart Turn inferences, and how late the event loop ran meanwhile."""
    from models.smart_turn import SharedSmartTurnAnalyzerV3

    analyzer = SharedSmartTurnAnalyzerV3(sample_rate=SAMPLE_RATE)
    analyzer.set_sample_rate(SAMPLE_RATE)
    speech = read_wav(DATA / "book_table.wav")

    async def measure() -> dict:
        loop, lags, walls, cpus = asyncio.get_running_loop(), [0.0], [], []
        ticking = True

        async def tick():
            while ticking:
                due = loop.time() + 0.001
                await asyncio.sleep(0.001)
                lags.append(loop.time() - due)

        ticker = asyncio.create_task(tick())
        for _ in range(inferences + 2):  # two warm-ups
            analyzer.clear()
            _append(analyzer, speech)
            wall, cpu = time.perf_counter(), time.process_time()
            await analyzer.analyze_end_of_turn()  # pipecat runs it on the analyzer's thread
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        ticking = False
        await ticker
        return {
            "wall_ms": statistics.median(walls[2:]) * 1000,
            "cpu_ms": statistics.median(cpus[2:]) * 1000,
            "cpu_min_ms": min(cpus[2:]) * 1000,
            "loop_lag_max_ms": max(lags) * 1000,
        }

    return asyncio.run(measure())


def _append(analyzer, pcm: bytes) -> None:
    size = 2 * round(PACKET_S * SAMPLE_RATE)
    for i in range(0, len(pcm) - size + 1, size):
        analyzer.append_audio(pcm[i : i + size], True)


async def _probe(args: list[str], env: dict[str, str] | None = None) -> dict:
    """Run a probe in a fresh process (its memory and BLAS threads are its own)."""
    command = [sys.executable, "-m", "bench.turns", "--probe", *args]
    probe = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    out, err = await probe.communicate()
    if probe.returncode:
        raise RuntimeError(f"probe {' '.join(args)} failed: {err.decode()[-2000:]}")
    return json.loads(out.decode().strip().splitlines()[-1])


@dataclass
class Costs:
    """What Smart Turn v3 costs a server."""

    calls: int
    memory: dict[tuple[str, int], dict]
    cpu: dict[str, dict]  # by OPENBLAS_NUM_THREADS


async def measure_costs(calls: int, inferences: int) -> Costs:
    """Memory of 1 and `calls` analyzers, pipecat's and ours; CPU per inference, BLAS 1 or not.

    One probe at a time, each in its own process.
    """
    keys = [(kind, n) for kind in ("pipecat", "shared") for n in (1, calls)]
    found = [await _probe(["memory", kind, str(n)]) for kind, n in keys]
    plain = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    cpu = {
        "1": await _probe(["cpu", str(inferences)], plain | {"OPENBLAS_NUM_THREADS": "1"}),
        "unset": await _probe(["cpu", str(inferences)], plain),
    }
    return Costs(calls, dict(zip(keys, found, strict=True)), cpu)


@dataclass(frozen=True)
class Load:
    """The machine's CPU ticks so far (/proc/stat) and this process tree's CPU seconds."""

    busy: int = 0
    steal: int = 0
    total: int = 0
    ours: float = 0.0

    @classmethod
    def now(cls) -> "Load":
        """A reading (zero ticks where there is no /proc/stat)."""
        own = os.times()
        ours = own.user + own.system + own.children_user + own.children_system
        try:
            ticks = [int(v) for v in Path("/proc/stat").read_text().split()[1:9]]
        except (OSError, ValueError):
            return cls(ours=ours)
        user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
        return cls(user + nice + system + irq + softirq, steal, sum(ticks), ours)

    def since(self, before: "Load") -> str:
        """How busy the CPUs were between two readings, and with what."""
        ticks = self.total - before.total
        if not ticks:
            return "CPU load not readable here"
        per_second = ticks / len(os.sched_getaffinity(0)) / (os.sysconf("SC_CLK_TCK") or 100)
        ours = (self.ours - before.ours) / per_second / len(os.sched_getaffinity(0))
        busy = (self.busy - before.busy) / ticks
        steal = (self.steal - before.steal) / ticks
        return (
            f"CPUs {busy:.0%} busy during the run ({ours:.0%} this benchmark, the rest other"
            f" work on the machine), {steal:.0%} stolen by the host"
        )


def ms(seconds: float) -> str:
    """Seconds as whole milliseconds."""
    return f"{seconds * 1000:.0f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def latency_table(scores: dict[str, Score]) -> str:
    """Latency at utterance ends, misses and false turn ends, one row per config."""
    rows = []
    for label, s in scores.items():
        lat = s.latencies
        figures = [ms(statistics.median(lat)), ms(p95(lat)), ms(max(lat))] if lat else ["-"] * 3
        vad = ms(statistics.median(s.vad_lags)) if s.vad_lags else "-"
        missed = f"{s.missed} of {len(lat) + s.missed}"
        false_ends = [str(sum(s.false_ends.values())), str(sum(s.heard.values()))]
        rows.append([label, *figures, vad, missed, *false_ends])
    header = ["turn end", "p50 ms", "p95 ms", "max ms", "VAD stop p50 ms", "missed"]
    return table([*header, "false ends", "of which heard"], rows)


def false_end_table(scores: dict[str, Score], recordings: list[Recording]) -> str:
    """False turn ends per recording, one row per config."""
    names = [r.name for r in recordings]
    rows = [
        [label, *(f"{s.false_ends.get(n, 0)} ({s.heard.get(n, 0)})" for n in names)]
        for label, s in scores.items()
    ]
    return table(["false turn ends (of which heard)", *names], rows)


def pause_table(scores: dict[str, Score]) -> str:
    """At how many pauses of each length the turn ended, one row per config."""
    bins = PAUSE_BINS
    first = next(iter(scores.values()))
    counts = [first.pauses_ended.get(b, [0, 0])[1] for b in bins]
    names = [
        f"{lo:g}–{hi:g} s ({n})" if hi < 60 else f"≥ {lo:g} s ({n})"
        for (lo, hi), n in zip(bins, counts, strict=True)
    ]
    rows = [
        [label, *(str(s.pauses_ended.get(b, [0, 0])[0]) for b in bins)]
        for label, s in scores.items()
    ]
    return table(["turn ended at pauses of (how many)", *names], rows)


def verdict_table(runs: list[Run]) -> str:
    """Smart Turn's verdicts: how many at utterance ends were "complete", and their time."""
    rows = []
    for label in dict.fromkeys(r.config.label for r in runs if r.config.smart_turn):
        mine = [r for r in runs if r.config.label == label]
        at_end, elsewhere, times = [0, 0], [0, 0], []
        for r in mine:
            for when, verdict in r.verdicts:
                stop = max((s for s in r.vad_stops if s <= when), default=when)  # its VAD stop
                span = _span_before(r.recording.voice, stop)
                tally = (
                    at_end if span >= 0 and _pause_is_end(r.recording, span, stop) else elsewhere
                )
                tally[0] += verdict.is_complete
                tally[1] += 1
                times.append(verdict.e2e_processing_time_ms / 1000)
        spread = f"{ms(statistics.median(times))} / {ms(max(times))}" if times else "-"
        minutes = sum(len(r.recording.pcm) / 2 / SAMPLE_RATE for r in mine) / 60
        rate = f"{len(times) / minutes:.0f}"
        rows.append(
            [
                label,
                f"{at_end[0]} of {at_end[1]}",
                f"{elsewhere[0]} of {elsewhere[1]}",
                rate,
                spread,
            ]
        )
    header = [
        "Smart Turn",
        "complete at utterance ends",
        "complete elsewhere",
        "inferences per minute of speech",
        "inference p50 / max ms",
    ]
    return table(header, rows)


def _pause_is_end(recording: Recording, span: int, when: float) -> bool:
    """Whether `when` falls in the pause after `span` and that pause ends an utterance."""
    resumes = recording.voice[span + 1][0] if span + 1 < len(recording.voice) else float("inf")
    return when < resumes and recording.ends_utterance(span)


def short_table(runs: list[Run]) -> str:
    """Per short recording: each config's latency and Smart Turn's probability of "complete"."""
    names = list(dict.fromkeys(r.recording.name for r in runs if not r.recording.cut))
    labels = list(dict.fromkeys(r.config.label for r in runs))
    rows = []
    for name in names:
        row = [name]
        for label in labels:
            r = next(x for x in runs if x.recording.name == name and x.config.label == label)
            s = score([r])
            cell = ms(s.latencies[0]) if s.latencies else "missed"
            cell += f" ({sum(s.false_ends.values())} false)" if sum(s.false_ends.values()) else ""
            if r.verdicts:
                cell += " p=" + ",".join(f"{v.probability:.2f}" for _, v in r.verdicts)
            row.append(cell)
        rows.append(row)
    return table(["ms after the voice ends", *labels], rows)


def costs_table(costs: Costs) -> str:
    """Memory and CPU of Smart Turn, pipecat's analyzer and ours."""
    rows = []
    for kind, name in (
        ("pipecat", "LocalSmartTurnAnalyzerV3"),
        ("shared", "SharedSmartTurnAnalyzerV3"),
    ):
        one, many = costs.memory[(kind, 1)], costs.memory[(kind, costs.calls)]
        rows.append(
            [
                f"`{name}`",
                f"{one['rss_mb']:.0f} / {one['pss_mb']:.0f}",
                f"{many['rss_mb']:.0f} / {many['pss_mb']:.0f}",
                f"{(many['pss_mb'] - one['pss_mb']) / (costs.calls - 1):.1f}",
                f"{one['first_load_ms']:.0f} / {many['next_load_ms']:.1f}",
            ]
        )
    header = [
        "analyzer",
        "1 call: RSS / PSS MB",
        f"{costs.calls} calls inferring at once: RSS / PSS MB",
        "each more call: PSS MB",
        "load: first / next ms",
    ]
    memory = table(header, rows)
    rows = [
        [
            f"`OPENBLAS_NUM_THREADS={blas}`",
            f"{c['wall_ms']:.0f}",
            f"{c['cpu_ms']:.0f} (min {c['cpu_min_ms']:.0f})",
            f"{c['loop_lag_max_ms']:.1f}",
        ]
        for blas, c in costs.cpu.items()
    ]
    header = [
        "per inference (8 s window)",
        "wall ms",
        "CPU ms, all threads",
        "event loop late by, max ms",
    ]
    return memory + "\n\n" + table(header, rows)


def cpu_per_minute(runs: list[Run], costs: Costs) -> str:
    """Smart Turn's CPU per minute of a caller's speech, from its inference rate and cost."""
    smart = [r for r in runs if r.config.smart_turn]
    minutes = sum(len(r.recording.pcm) / 2 / SAMPLE_RATE for r in smart) / 60
    if not minutes:
        return ""
    rate = sum(len(r.verdicts) for r in smart) / minutes
    parts = []
    for blas, figures in costs.cpu.items():
        seconds = rate * figures["cpu_ms"] / 1000
        parts.append(f"{seconds:.1f} CPU-s ({seconds / 60:.1%} of a core) with BLAS {blas}")
    return (
        f"At {rate:.0f} inferences per minute of speech, Smart Turn takes per minute of a"
        f" caller's speech: {'; '.join(parts)}."
    )


def choose(scores: dict[str, Score]) -> tuple[str, str]:
    """The default the figures support, and the rule that picked it."""
    rule = (
        "fewest errors a caller notices (false turn ends the bot would be heard over, and"
        " missed utterance ends), then the lowest p50 + p95 latency (the usual wait and the"
        " slowest)"
    )

    def key(label: str):
        s = scores[label]
        latency = statistics.median(s.latencies) + p95(s.latencies) if s.latencies else 99.0
        return (sum(s.heard.values()) + s.missed, latency)

    return min(scores, key=key), rule


def report(runs: list[Run], recordings: list[Recording], costs: Costs, context: str) -> str:
    """The whole TURNS.md."""
    labels = list(dict.fromkeys(r.config.label for r in runs))
    scores = {label: score([r for r in runs if r.config.label == label]) for label in labels}
    best, rule = choose(scores)
    parts = [
        "# Turn detection: speech timeout vs Smart Turn v3",
        context,
        f"**By the rule** ({rule}): **{best}**.",
        "## End of speech → turn end, at every utterance end",
        latency_table(scores),
        "## False turn ends, per recording",
        false_end_table(scores, recordings),
        "## Every pause between two stretches of voice: where the turn ended",
        pause_table(scores),
        "## The short recordings, one by one",
        short_table(runs),
        "## Smart Turn's verdicts",
        verdict_table(runs),
        "## What Smart Turn costs a server",
        costs_table(costs),
        cpu_per_minute(runs, costs),
        METHOD,
    ]
    return "\n\n".join(parts) + "\n"


def _context(command: str, load: str, recordings: list[Recording]) -> str:
    from importlib.metadata import version

    ends = sum(r.ends_utterance(k) for r in recordings for k in range(len(r.voice)))
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    return "\n".join(
        [
            f"- date: {time.strftime('%Y-%m-%d')}; command: `{command}`",
            f"- machine: {len(os.sched_getaffinity(0))} CPUs; {load}",
            f"- pipecat-ai {version('pipecat-ai')}; OPENBLAS_NUM_THREADS {blas}",
            f"- recordings: {', '.join(r.name for r in recordings)} ({ends} utterance ends)",
        ]
    )


async def main_async(args: argparse.Namespace) -> str:
    """Measure everything; return the report."""
    base = load_declaration(PIPELINES_DIR / "default.toml")
    recordings = [load_recording(n) for n in (QUICK if args.quick else LONG + SHORT)]
    before = Load.now()
    print("turn detection, in real time:", flush=True)
    runs = await run_all(recordings, configs(base))
    print("costs:", flush=True)
    costs = await measure_costs(10, 3 if args.quick else 30)
    load = Load.now().since(before)
    command = "python -m bench.turns" + (" --quick" if args.quick else "")
    return report(runs, recordings, costs, _context(command, load, recordings))


def main() -> None:
    """Run the benchmark; print the report; write it to --out (TURNS.md unless --quick)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--out", type=Path, help="default: TURNS.md (none with --quick)")
    parser.add_argument("--probe", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    if args.probe:
        kind, *rest = args.probe
        result = (
            probe_memory(rest[0], int(rest[1])) if kind == "memory" else probe_cpu(int(rest[0]))
        )
        print(json.dumps(result))
        return
    text = asyncio.run(main_async(args))
    print(text)
    out = args.out or (None if args.quick else Path(__file__).parent.parent / "TURNS.md")
    if out:
        out.write_text(text)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
