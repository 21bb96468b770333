"""Silence and call-length faults: a caller who says nothing, a call that goes on too long.

The `[call]` limits are shortened (the shipped ones are 10 s, 10 s and 30 minutes) by copying
a shipped declaration, so these calls take seconds.
"""

import asyncio
import contextlib
from dataclasses import dataclass, field, replace

from loguru import logger

from harness.faults import Fault, Outcome, bot_with, dial, read_back, spoken_texts
from pipelines.declaration import ENGLISH_LINES, Declaration, load_declarations
from recordings import RECORDINGS
from standins.caller import SimulatedCall
from standins.openai_replies import LONG_REPLY
from standins.playout import Stretch
from standins.script import BOOKING_REPLY, GREETING, long_reply_to_bookings
from standins.stack import StandIns

DATA = RECORDINGS
PROMPT, GOODBYE = ENGLISH_LINES["silence_prompt"], ENGLISH_LINES["silence_goodbye"]
TIME_UP = ENGLISH_LINES["time_up"]
KNOWN = [GREETING, BOOKING_REPLY, LONG_REPLY, PROMPT, GOODBYE, TIME_UP]
PROMPT_SECS = GOODBYE_SECS = 2.0
MAX_SECS = 10.0
LINE_GAP_SECS = 0.5  # bot audio closer than this to the previous audio is the same line
# A line due N s after the previous one finished playing comes N s plus the mark echo and
# the TTS's first audio later: never earlier, and on a loaded 2-core machine up to this late.
LATE_SECS = 1.5


@dataclass
class Line:
    """One stretch of bot speech as the caller heard it; times in stream seconds."""

    sentences: list[str]
    start: float
    end: float

    @property
    def text(self) -> str:
        """The sentences heard, joined."""
        return " ".join(self.sentences)


@dataclass
class SilenceRun:
    """What one call saw: the lines heard, the hang-up, and the evidence behind them."""

    outcome: Outcome
    lines: list[Line] = field(default_factory=list)
    closed_at: float | None = None  # the media WebSocket closed (stream seconds)
    hangup_at: float | None = None  # the REST hang-up reached the Twilio stand-in
    context: list[tuple[str, str]] = field(default_factory=list)  # the call's, at its end
    logs: list[tuple[str, str]] = field(default_factory=list)  # (level, message), INFO+
    stalled: bool = False  # the caller waited in vain for the bot to say something
    media: list[float] = field(default_factory=list)  # when each bot media message arrived

    def arrived(self, line: Line) -> float:
        """When the last media message of `line` arrived (before its audio had all played)."""
        return max(
            (t for t in self.media if line.start - LINE_GAP_SECS < t <= line.end), default=line.end
        )

    def line(self, text: str) -> Line | None:
        """The first line heard that is `text` in full."""
        return next((line for line in self.lines if line.text == text), None)

    def gap(self, before: str, after: str) -> float | None:
        """Seconds from the end of line `before` to the start of line `after` (both heard)."""
        first, second = self.line(before), self.line(after)
        return None if first is None or second is None else second.start - first.end


def shortened(pipeline: str = "default", **limits: float) -> dict[str, Declaration]:
    """The shipped declarations, with `pipeline`'s `[call]` limits replaced by `limits`."""
    declarations = load_declarations()
    declaration = declarations[pipeline]
    call = declaration.call.model_copy(update=limits)  # (below the validated minimums)
    return declarations | {pipeline: replace(declaration, call=call)}


async def stay_silent(pipeline: str = "default") -> SilenceRun:
    """The caller says nothing at all after the greeting, until the bot hangs up."""

    async def silence(call: SimulatedCall, _standins: StandIns) -> None:
        await call.wait_closed(timeout=30)

    return await _run(silence, pipeline)


async def answer_the_prompt() -> SilenceRun:
    """Silent until prompted, the caller then books a table, then falls silent again."""

    async def answer(call: SimulatedCall, _standins: StandIns) -> None:
        greeting = await call.listen(timeout=15)
        await call.listen(timeout=15, after=greeting.end)  # the prompt
        await call.say(DATA / "book_table.wav")
        reply = await call.listen(timeout=15)
        await call.listen(timeout=15, after=reply.end)  # prompted again, as the clock restarted
        await call.hang_up()

    return await _run(answer, "default")


async def long_reply() -> SilenceRun:
    """The bot answers a booking with a ~17 s reply; then the caller says nothing."""

    async def book(call: SimulatedCall, standins: StandIns) -> None:
        standins.openai.responder = long_reply_to_bookings
        await call.listen(timeout=15)
        await call.say(DATA / "book_table.wav")
        reply = await call.listen(timeout=40, quiet=1.0)
        await call.listen(timeout=15, after=reply.end)  # the prompt
        await call.hang_up()

    return await _run(book, "default")


async def keep_talking(pipeline: str = "default") -> SilenceRun:
    """The caller books a table again and again: the call ends at `MAX_SECS`."""

    async def talk(call: SimulatedCall, _standins: StandIns) -> None:
        await call.listen(timeout=15)
        while not call.closed.is_set():
            await call.say(DATA / "book_table.wav")
            with contextlib.suppress(TimeoutError):
                await call.listen(timeout=15)
        await call.wait_closed(timeout=15)

    return await _run(
        talk, pipeline, silence_prompt_secs=60, silence_goodbye_secs=60, max_secs=MAX_SECS
    )


async def _run(script, pipeline: str, **limits: float) -> SilenceRun:
    """Run `script(call, standins)` on a call to `pipeline` with short `[call]` limits."""
    limits = {
        "silence_prompt_secs": PROMPT_SECS,
        "silence_goodbye_secs": GOODBYE_SECS,
        "max_secs": 60.0,
    } | limits
    logs: list[tuple[str, str]] = []
    sink = logger.add(lambda m: logs.append((m.record["level"].name, m.record["message"])))
    try:
        declarations = shortened(pipeline, **limits)
        async with bot_with(env={"PIPELINE": pipeline}, declarations=declarations) as (
            bot,
            standins,
        ):
            call = await dial(bot)
            await call.wait_for_bot_audio(timeout=15)  # the greeting: the call is running
            record = bot.app.state.calls[call.call_sid]
            stalled = False
            try:
                await script(call, standins)
            except TimeoutError:
                stalled = True  # the caller waited in vain for the bot: judged by what it heard
            finally:
                await call.hang_up()
                await asyncio.sleep(0.2)  # the server sees the hang-up
            run = _evidence(call, standins, logs)
            run.stalled = stalled
            if record.context is not None:
                run.context = [
                    (m["role"], str(m.get("content")))
                    for m in record.context.get_messages()
                    if m["role"] in ("user", "assistant")
                ]
    finally:
        logger.remove(sink)
    return run


def _evidence(call: SimulatedCall, standins: StandIns, logs) -> SilenceRun:
    closed = [e.t for e in call.events("closed") if e.detail == "server closed the stream"]
    hangups = [r for r in standins.twilio.requests if r.form.get("Status") == "completed"]
    lines = lines_heard(call, spoken_texts(standins) + KNOWN)
    return SilenceRun(
        outcome=Outcome(False, [sentence for line in lines for sentence in line.sentences]),
        lines=lines,
        closed_at=closed[0] if closed else None,
        hangup_at=call.stream_time(hangups[0].at) if hangups else None,
        logs=logs,
        media=[e.t for e in call.events("media")],
    )


def lines_heard(call: SimulatedCall, texts: list[str]) -> list[Line]:
    """The bot's lines as the caller heard them.

    A line is bot audio with gaps under 0.5 s (a late packet splits a stretch, not a line),
    up to a Twilio `clear` (a reply cut off: what follows is another line).
    """
    clears = [e.t for e in call.events("clear")]
    groups: list[list[Stretch]] = []
    for stretch in call.heard:
        previous = groups[-1][-1] if groups else None
        if (
            previous
            and stretch.start - previous.end < LINE_GAP_SECS
            and not any(previous.start < t <= stretch.start for t in clears)
        ):
            groups[-1].append(stretch)
        else:
            groups.append([stretch])
    return [_line(group, texts) for group in groups]


def _line(stretches: list[Stretch], texts: list[str]) -> Line:
    return Line(read_back(stretches, texts), stretches[0].start, stretches[-1].end)


# -- judging -----------------------------------------------------------------------------


def judge_silent(run: SilenceRun) -> SilenceRun:
    """Greeting, the prompt `PROMPT_SECS` after it played, the goodbye, then the hang-up."""
    problems = []
    texts = [line.text for line in run.lines]
    if texts != [GREETING, PROMPT, GOODBYE]:
        problems.append(f"heard {texts}, expected the greeting, the prompt, the goodbye")
    _due(problems, run, GREETING, PROMPT, PROMPT_SECS)
    _due(problems, run, PROMPT, GOODBYE, GOODBYE_SECS)
    _hung_up_after(problems, run, GOODBYE)
    return _finish(
        run,
        problems,
        f"prompt {_secs(run.gap(GREETING, PROMPT))} after the greeting finished playing, "
        f"goodbye {_secs(run.gap(PROMPT, GOODBYE))} after the prompt; "
        + _hang_up_figures(run, GOODBYE),
    )


def judge_answered(run: SilenceRun) -> SilenceRun:
    """Prompted, the caller answers: the reply, no goodbye, and the count starts over."""
    problems = []
    texts = [line.text for line in run.lines]
    if texts != [GREETING, PROMPT, BOOKING_REPLY, PROMPT]:
        problems.append(f"heard {texts}, expected greeting, prompt, booking reply, prompt")
    again = run.lines[3] if len(run.lines) > 3 else None
    gap = again.start - run.lines[2].end if again else None
    if gap is not None and not PROMPT_SECS - 0.1 <= gap <= PROMPT_SECS + LATE_SECS:
        problems.append(f"the second prompt came {gap:.2f} s after the reply, not ~{PROMPT_SECS}")
    if ("assistant", PROMPT) not in run.context:
        problems.append("the prompt is not in the call's context")
    if run.hangup_at is not None:
        problems.append("the bot hung up on a caller who answered")
    return _finish(
        run, problems, f"prompted again {_secs(gap)} after the booking reply finished playing"
    )


def judge_long_reply(run: SilenceRun) -> SilenceRun:
    """A long reply is not silence: the prompt comes `PROMPT_SECS` after it has played."""
    problems = []
    texts = [line.text for line in run.lines]
    if texts != [GREETING, LONG_REPLY, PROMPT]:
        problems.append(f"heard {texts}, expected the greeting, the long reply, the prompt")
    _due(problems, run, LONG_REPLY, PROMPT, PROMPT_SECS)
    reply = run.line(LONG_REPLY)
    if reply is None:
        return _finish(run, problems, "no reply heard")
    sent = reply.end - run.arrived(reply)
    return _finish(
        run,
        problems,
        f"{reply.end - reply.start:.1f} s reply, all sent {sent:.1f} s before it finished "
        f"playing; prompt {_secs(run.gap(LONG_REPLY, PROMPT))} after it played",
    )


def judge_too_long(run: SilenceRun) -> SilenceRun:
    """At `MAX_SECS` the bot says time_up, whatever it was doing, and hangs up."""
    problems = []
    last = run.lines[-1] if run.lines else None
    if last is None or last.text != TIME_UP:
        problems.append(f"the last line heard was not time_up: {last}")
    elif not MAX_SECS <= last.start <= MAX_SECS + LATE_SECS + 1.0:
        problems.append(f"time_up began {last.start:.2f} s into the call, limit {MAX_SECS} s")
    if not any(level == "WARNING" and "time limit" in m for level, m in run.logs):
        problems.append("no warning logged at the limit")
    _hung_up_after(problems, run, TIME_UP)
    start = f"{last.start:.2f} s" if last else "never"
    return _finish(
        run,
        problems,
        f"time_up began {start} into the call (limit {MAX_SECS:g} s); "
        + _hang_up_figures(run, TIME_UP),
    )


def _due(problems: list[str], run: SilenceRun, before: str, after: str, secs: float) -> None:
    gap = run.gap(before, after)
    if gap is not None and not secs - 0.1 <= gap <= secs + LATE_SECS:
        problems.append(f"{after!r} came {gap:.2f} s after {before!r} played, not ~{secs:g} s")


def _hung_up_after(problems: list[str], run: SilenceRun, last: str) -> None:
    line = run.line(last)
    if run.hangup_at is None:
        problems.append("no REST hang-up reached Twilio")
    elif line and run.hangup_at < line.end - 0.05:
        problems.append(f"hung up {line.end - run.hangup_at:.2f} s before {last!r} had played")
    if run.closed_at is None:
        problems.append("the bot never closed the media WebSocket")


def _hang_up_figures(run: SilenceRun, last: str) -> str:
    line = run.line(last)
    if not line or run.hangup_at is None or run.closed_at is None:
        return "no hang-up"
    return (
        f"REST hang-up {run.hangup_at - line.end:.2f} s and socket closed "
        f"{run.closed_at - line.end:.2f} s after it played"
    )


def _finish(run: SilenceRun, problems: list[str], figures: str) -> SilenceRun:
    if run.stalled:
        problems.append("the caller waited in vain for the bot to speak")
    run.outcome.problems, run.outcome.survived = problems, not problems
    run.outcome.figures = figures
    return run


def _secs(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


async def _silent() -> Outcome:
    return judge_silent(await stay_silent()).outcome


async def _too_long() -> Outcome:
    return judge_too_long(await keep_talking()).outcome


FAULTS = [
    Fault(
        "caller silent",
        f"the caller sends only silence after the greeting ([call] {PROMPT_SECS:g} s / "
        f"{GOODBYE_SECS:g} s)",
        _silent,
    ),
    Fault(
        "call too long",
        f"the caller keeps booking tables past [call] max_secs = {MAX_SECS:g} s",
        _too_long,
    ),
]
