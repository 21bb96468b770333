"""BENCHMARKS.md: the figures of each bot, side by side, with ratios."""

import datetime
import os
import platform
import statistics
from importlib.metadata import version

import psutil

from bench.capacity import p95

STAGES = ["vad stop", "stt final", "turn end", "llm", "llm → tts", "tts", "tts → heard"]


def ms(seconds: float) -> str:
    """Seconds as whole milliseconds."""
    return f"{seconds * 1000:.0f} ms"


def markdown(figures: list, reply_runs: list, args, command: str) -> str:
    """The whole report."""
    parts = [
        "# Benchmarks",
        _machine(command, args),
        "## Side by side",
        _summary(figures),
        "## Reply latency: turn ends and speculative replies",
        _replies(reply_runs),
        "## Reply latency, stage by stage (one call at a time, medians)",
        _stages(figures, args),
        "## Capacity",
        levels_table(figures),
        "## Soak",
        _soak(figures),
        "## Where the CPU goes",
        _profiles(figures),
    ]
    return "\n\n".join(parts) + "\n"


def _replies(runs: list) -> str:
    from bench.replies import PAUSE_S, TTS_TTFB_S, table

    return "\n\n".join(
        [
            table(runs),
            f"Stand-ins: STT final 100 ms after Finalize, TTS first audio "
            f"{TTS_TTFB_S * 1000:.0f} ms, LLM 80 tokens/s after its first. Each call: "
            "opening_hours, book_table, yes, then opening_hours and yes with "
            f"{PAUSE_S:g} s between (one turn: a caller who pauses and goes on). *ours*: the "
            "default pipeline (Smart Turn, speculative replies); *ours, old default*: it with "
            '`end = "speech-timeout"` and `speculative = false`. '
            "*answered speculatively*: turns whose reply was requested before the turn ended "
            "(the bot's log); *wasted*: LLM requests (the stand-in's count) beyond one a turn; "
            "*false turn ends*: turns the bot ended inside what the caller said as one (more "
            "caller messages in the call's last request than utterances said).",
        ]
    )


def _machine(command: str, args) -> str:
    lat = args.latencies
    cpu = platform.processor() or platform.machine()
    model = cpu_model() or cpu
    memory = psutil.virtual_memory().total / 2**30
    return "\n".join(
        [
            f"- date: {datetime.date.today().isoformat()}",
            f"- machine: {model}, {len(os.sched_getaffinity(0))} cores, {memory:.0f} GiB,"
            f" Python {platform.python_version()}, pipecat-ai {version('pipecat-ai')}",
            f"- command: `{command}`",
            f"- stand-in service latencies: STT final {ms(lat.stt_final_s)} after Finalize,"
            f" LLM first token {ms(lat.llm_ttft_s)} then {lat.llm_tokens_per_s:.0f} tokens/s,"
            f" TTS first audio {ms(lat.tts_ttfb_s)}",
            "- every time is measured at the simulated caller, after Twilio's modelled playout"
            " (20 ms ticks); the stand-ins, the callers and the bots share this machine",
        ]
    )


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo (empty if unknown)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _summary(figures: list) -> str:
    rows = [_row(name, [get(f) for f in figures], better) for name, get, better in _METRICS]
    names = " | ".join(f.bot.name for f in figures)
    ratio = " | ratio |" if len(figures) == 2 else " |"
    rule = "| --- " * (len(figures) + 1 + (len(figures) == 2)) + "|"
    return "\n".join([f"| figure | {names}{ratio}", rule, *rows, "", _NOTES])


def _row(name: str, values: list, better: str) -> str:
    shown = " | ".join(_show(v) for v in values)
    if len(values) == 2 and better and all(isinstance(v, (int, float)) for v in values):
        a, b = values
        ratio = (b / a if better == "low" else a / b) if a and b else float("nan")
        shown += f" | {ratio:.1f}×"
    elif len(values) == 2:
        shown += " | "
    return f"| {name} | {shown} |"


def _show(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _turns(f) -> list:
    return [t for c in f.calls for t in c.turns]


def _pct(values: list[float], q: str) -> float:
    if not values:
        return float("nan")
    return (statistics.median(values) if q == "p50" else p95(values)) * 1000


def _greetings(f) -> list[float]:
    return [c.greeting_s for c in f.calls]


_METRICS = [
    ("reply latency p50 (ms)", lambda f: _pct([t.latency_s for t in _turns(f)], "p50"), "low"),
    ("reply latency p95 (ms)", lambda f: _pct([t.latency_s for t in _turns(f)], "p95"), "low"),
    ("configured turn-end silence (ms)", lambda f: f.bot.turn_end_s * 1000, ""),
    ("reply overhead p50 (ms)", lambda f: _pct([t.overhead_s for t in _turns(f)], "p50"), "low"),
    ("reply overhead p95 (ms)", lambda f: _pct([t.overhead_s for t in _turns(f)], "p95"), "low"),
    (
        "barge-in: onset → `clear` p50 (ms)",
        lambda f: _pct([b.latency_s for b in f.barge_ins], "p50"),
        "low",
    ),
    (
        "barge-in: onset → `clear` p95 (ms)",
        lambda f: _pct([b.latency_s for b in f.barge_ins], "p95"),
        "low",
    ),
    (
        "barge-in: bot audio after `clear`, worst (bytes)",
        lambda f: max((b.audio_after_clear for b in f.barge_ins), default=0),
        "",
    ),
    ("greeting: `start` → first audio p50 (ms)", lambda f: _pct(_greetings(f), "p50"), "low"),
    ("greeting: `start` → first audio p95 (ms)", lambda f: _pct(_greetings(f), "p95"), "low"),
    ("greeting on a server's first call (ms)", lambda f: f.first_greeting_s * 1000, "low"),
    ("server processes", lambda f: f.bot.workers, ""),
    ("calls at the knee (this machine)", lambda f: f.knee.calls, "high"),
    ("calls per core at the knee", lambda f: f.knee.calls / f.cores, "high"),
    ("CPU seconds per call-minute", lambda f: f.knee.cpu_per_call_minute, "low"),
    (
        "resident memory per call (MB, PSS), worst level",
        lambda f: max(lv.mb_per_call for lv in f.levels),
        "low",
    ),
    ("soak: memory growth", lambda f: _growth(f.soak.before.pss_mb, f.soak.after.pss_mb), ""),
    ("soak: open files", lambda f: f"{f.soak.before.fds} → {f.soak.after.fds}", ""),
    ("soak: asyncio tasks", lambda f: f"{f.soak.tasks_before} → {f.soak.tasks_after}", ""),
]

_NOTES = """\
- *reply latency*: end of the caller's voice in the recording → first bot audio heard.
  *Overhead*: that minus what the configuration accounts for: the bot's turn-end silence (or
  the STT's final transcript, if later), the LLM's time to the end of its first sentence and
  the TTS's first-audio time.
- *knee*: the most concurrent calls whose p95 reply overhead stays within 20% (or one 20 ms
  playout tick) of the calls made one at a time, with no failed call, no playback stall
  (a gap under 0.5 s inside the bot's audio at the caller) and the inbound audio never more
  than 100 ms behind real time at the STT. CPU is read at the knee: CPU seconds
  of every server process per minute of call. Memory per call: PSS of every server process
  (shared pages counted once) at its peak during a level minus before it, over the level's
  calls; the worst level is shown.
- The calls made one at a time follow two warm-up calls (not counted: a worker's first call
  pays for lazy imports and first connections); the first call's greeting is shown apart.
- *calls per core*: calls at the knee over the cores the bot's processes can use (one
  process uses one core)."""


def _stalls(level) -> str:
    """`none`, or how many gaps the callers heard and how long they were in all."""
    gaps = level.stalls
    return f"{len(gaps)}, {ms(sum(gaps))} in all" if gaps else "none"


def _growth(before: float, after: float) -> str:
    return f"{before:.0f} → {after:.0f} MB ({(after - before) / before * 100:+.1f}%)"


def _stages(figures: list, args) -> str:
    lat = args.latencies
    configured = {
        "vad stop": "200 ms silence (both)",
        "stt final": f"VAD stop + {ms(lat.stt_final_s)}",
        "turn end": " / ".join(f"{ms(f.bot.turn_end_s)}" for f in figures) + " silence",
        "llm": f"{ms(lat.llm_ttft_s)} + tokens of the first sentence",
        "tts": ms(lat.tts_ttfb_s),
    }
    lines = [
        "| stage | configured | " + " | ".join(f.bot.name for f in figures) + " |",
        "| --- " * (len(figures) + 2) + "|",
    ]
    for stage in STAGES:
        cells = []
        for f in figures:
            values = [t.stages[stage] for t in _turns(f) if stage in t.stages]
            cells.append(ms(statistics.median(values)) if values else "-")
        lines.append(f"| {stage} | {configured.get(stage, '0')} | {' | '.join(cells)} |")
    lines += [
        "",
        "Stages: *vad stop* is the end of the voice → the bot's VAD deciding the caller stopped"
        " (seen as the `Finalize` it sends Deepgram): the configured silence plus the time"
        " Silero's confidence takes to fall after the voice ends;"
        " *stt final* runs alongside *turn end* (speech end → the LLM request);"
        " *llm* is request → the token that ends the first sentence; *llm → tts* is that token"
        " → the sentence reaching the TTS; *tts* → its first audio; *tts → heard* is the bot's"
        " audio path to the caller's ear (pipeline, WebSocket, playout tick).",
        "The *turn end* setting shown is each bot's own configured silence; stock Pipecat then"
        " runs Smart Turn, and waits up to 3 s more when it judges the sentence unfinished.",
    ]
    return "\n".join(lines)


def levels_table(figures: list) -> str:
    """Each bot's capacity levels (`BotFigures`), and what the columns mean."""
    lines = []
    for f in figures:
        lines += [
            f"**{f.bot.name}** ({f.bot.workers} process(es)):",
            "",
            "| calls | p95 overhead | inbound lag | callers' clock lag | playback stalls |"
            " CPU s/call-min | server CPU busy | MB/call | bench CPU busy | failed |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for lv in f.levels:
            lines.append(
                f"| {lv.calls} | {ms(lv.p95_overhead)} | {ms(lv.max_lag_s)}"
                f" | {ms(lv.caller_lag_s)} | {_stalls(lv)}"
                f" | {lv.cpu_per_call_minute:.2f} | {lv.cpu_s / lv.wall_s:.0%}"
                f" | {lv.mb_per_call:.1f} | {lv.harness_cpu_s / lv.wall_s:.0%}"
                f" | {len(lv.failures)} |"
            )
        lines.append("")
    lines.append(
        "*busy*: CPU seconds over wall seconds (100% = one core). The bench process (simulated"
        " callers and stand-ins) shares the machine and is shown for that reason. *inbound lag*:"
        " how far behind real time the caller's audio reached the STT stand-in, at worst;"
        " *callers' clock lag*: how late the simulated callers themselves sent it (the"
        " harness's share of that lag)."
    )
    return "\n".join(lines)


def _soak(figures: list) -> str:
    lines = [
        "| bot | calls | failed | PSS | PSS every 50 calls | open files | asyncio tasks |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        s = f.soak
        steps = " → ".join(f"{mb:.0f}" for mb in s.pss_steps_mb)
        lines.append(
            f"| {f.bot.name} | {s.calls} | {s.failures}"
            f" | {_growth(s.before.pss_mb, s.after.pss_mb)} | {steps} MB"
            f" | {s.before.fds} → {s.after.fds} | {s.tasks_before} → {s.tasks_after} |"
        )
    lines.append(
        "\nOne server process each, its calls several at a time (each caller dials again as"
        " soon as it hangs up); readings after 100 warm-up calls made the same way (the"
        " allocator's high-water mark of that many calls is not a leak), then after the last"
        " call has closed. Each call answers the greeting at once, hears the reply start and"
        " hangs up."
    )
    return "\n".join(lines)


def _profiles(figures: list) -> str:
    lines = []
    for f in figures:
        if not f.profile:
            continue
        categories, functions = f.profile
        lines += [
            f"**{f.bot.name}**: py-spy, one server process, 20 s at 200 Hz while"
            f" {f.profiled_calls} calls ran on the server:",
            "",
            "| what | share of samples |",
            "| --- | --- |",
            *[f"| {name} | {share:.0%} |" for name, share in categories],
            "",
            "| function (own time) | share |",
            "| --- | --- |",
            *[f"| `{name}` | {share:.1%} |" for name, share in functions],
            "",
        ]
    return "\n".join(lines) or "(not profiled in a smoke run)"
