"""TTS faults: Deepgram's TTS socket drops in the middle of a reply."""

from dataclasses import dataclass, field
from functools import partial
from typing import Literal

from loguru import logger

from harness.faults import Fault, Outcome, bot_with, dial, read_back, spoken_texts
from recordings import RECORDINGS
from standins.audio import pcm_to_ulaw
from standins.deepgram_tts import DeepgramTTSStandIn, TTSConnection
from standins.playout import Stretch
from standins.speech import synthesize

DATA = RECORDINGS
BOOK_TABLE = "Hi, I'd like to book a table for two tomorrow at seven."
GOODBYE = "Thanks, that's all. Goodbye."
BOOKING_REPLY = "Of course. A table for two tomorrow at seven. May I have a name for the booking?"
SENTENCES = BOOKING_REPLY.replace(". ", ".|").split("|")  # the three sentences
FAREWELL = "Thanks for calling Luigi's. Goodbye!"
CUT_AFTER_BYTES = 8000  # of the 2nd sentence's audio: 0.5 s at 8 kHz, "A table…"
GAP_LIMIT_SECS = 3.0  # re-spoken audio later than this (pipecat's audio-context timeout) fails


@dataclass
class DropRun:
    """One call through a dropped TTS socket: the outcome and the evidence behind it."""

    outcome: Outcome
    connections: list[TTSConnection] = field(default_factory=list)  # this call's, in order
    refused: list[int] = field(default_factory=list)  # upgrades the stand-in refused
    reply_audio: bytes = b""  # μ-law the caller heard of the booking reply, stretches joined
    reply_played: list[tuple[float, float]] = field(default_factory=list)  # (start, end) s
    underruns: int = 0  # silences inside the reply and the farewell at the caller
    fragment_bytes: int | None = None  # of the cut sentence heard before it was re-spoken
    wire_gap: float | None = None  # last audio before the drop → first re-spoken audio (s)
    caller_gap: float | None = None  # the silence the caller heard at the same point (s)
    assistant_reply: str | None = None  # the reply as the next LLM request has it
    logs: list[tuple[str, str]] = field(default_factory=list)  # (level, message), WARNING+
    hung_up: bool = False


async def drop_mid_reply(
    *, drop_with: Literal["abort", 1011] = "abort", refuse_after_drop: int = 0
) -> DropRun:
    """The booking reply's socket is cut 0.5 s into its 2nd sentence; then the caller leaves.

    Greeting (cached: not through the TTS socket), "book a table" → the three-sentence reply,
    cut by the stand-in; the goodbye turn after it must be answered with the farewell and a
    REST hang-up. The stand-in streams at twice real time (Aura is faster than real time).
    """
    logs: list[tuple[str, str]] = []
    sink = logger.add(
        lambda m: logs.append((m.record["level"].name, m.record["message"])), level="WARNING"
    )
    tts = DeepgramTTSStandIn(
        realtime_factor=2.0,
        drop_after_bytes=CUT_AFTER_BYTES,
        drop_with=drop_with,
        refuse_after_drop=refuse_after_drop,
    )
    try:
        async with bot_with(tts=tts) as (bot, standins):
            first = len(tts.connections)  # the greetings' synthesis at start-up came before
            call = await dial(bot)
            await call.listen()
            tts.drop_on_text = SENTENCES[1]  # after any speculative reply withdrawn
            await call.say(DATA / "book_table.wav")
            since = call.now()
            await call.listen(timeout=20, quiet=1.5)
            reply = [s for s in call.heard if s.start >= since]
            goodbye_at = call.now()
            await call.say(DATA / "goodbye.wav")
            await call.listen(timeout=15)
            await call.wait_closed(timeout=10)
            farewell = [s for s in call.heard if s.start >= goodbye_at]
            texts = spoken_texts(standins)
            run = DropRun(
                outcome=Outcome(False, read_back(reply, texts) + read_back(farewell, texts)),
                connections=tts.connections[first:],
                refused=list(tts.refused),
                reply_audio=_joined(reply),
                reply_played=[(s.start, s.end) for s in reply],
                underruns=max(len(reply) - 1, 0) + max(len(farewell) - 1, 0),
                assistant_reply=_assistant_reply(standins.openai.requests),
                logs=logs,
                hung_up=await standins.twilio.wait_for_hangup(call.call_sid, timeout=5),
            )
            _measure(run, reply)
    finally:
        logger.remove(sink)
    return judge(run)


def _voice(text: str) -> bytes:
    return pcm_to_ulaw(synthesize(text).pcm)


def _joined(stretches: list[Stretch]) -> bytes:
    return b"".join(bytes(s.ulaw) for s in stretches)


def _fragment(audio: bytes) -> int | None:
    """How much of the 2nd sentence was heard before it was spoken again whole (bytes).

    None unless the audio is exactly sentence 1, a start of sentence 2, then sentences 2
    and 3 whole (the end to within one 40 ms chunk, as `heard_sentences` allows).
    """
    one, two, three = (_voice(s) for s in SENTENCES)
    if not audio.startswith(one):
        return None
    rest = audio[len(one) :]
    cut = rest.rfind(two)
    tail = rest[cut + len(two) :]
    if cut < 0 or rest[:cut] != two[:cut] or abs(len(tail) - len(three)) > 320:
        return None
    return cut if tail[: len(three) - 320] == three[: len(three) - 320] else None


def _assistant_reply(requests) -> str | None:
    """The booking reply's assistant message in the goodbye turn's chat request."""
    for request in requests:
        messages = request.body.get("messages", [])
        users = [m for m in messages if m["role"] == "user"]
        if users and users[-1]["content"] == GOODBYE:
            index = next(i for i, m in enumerate(messages) if m.get("content") == BOOK_TABLE)
            following = messages[index + 1] if index + 1 < len(messages) else {}
            return following.get("content") if following.get("role") == "assistant" else None
    return None


def _measure(run: DropRun, reply: list[Stretch]) -> None:
    run.fragment_bytes = _fragment(run.reply_audio)
    cut = next((i for i, c in enumerate(run.connections) if c.dropped_at is not None), None)
    resumed = [c for c in run.connections[cut + 1 :] if c.audio_at] if cut is not None else []
    if resumed:
        run.wire_gap = resumed[0].audio_at[0] - run.connections[cut].last_audio_at
    if run.fragment_bytes is not None:
        splice = len(_voice(SENTENCES[0])) + run.fragment_bytes
        run.caller_gap = _silence_at(reply, splice)


def _silence_at(stretches: list[Stretch], offset: int) -> float:
    """The silence the caller heard at `offset` of the stretches joined (to within 40 ms).

    The playout buffer runs dry mid-packet, so a stretch may end a few bytes off the splice.
    """
    silence, end = 0.0, 0
    for before, after in zip(stretches, stretches[1:], strict=False):
        end += len(before.ulaw)
        if abs(end - offset) <= 320:
            silence += after.start - before.end
    return silence


def farewell(heard: list[str]) -> str:
    """What was heard after the booking reply's last sentence (one entry or one per sentence)."""
    last = max((i for i, h in enumerate(heard) if h == SENTENCES[-1]), default=len(heard))
    return " ".join(heard[last + 1 :])


def judge(run: DropRun) -> DropRun:
    """Everything the fault demands, each unmet one as a problem."""
    problems = []
    if len(run.connections) < 2:
        problems.append(f"no reconnection: {len(run.connections)} TTS connection(s)")
    elif run.connections[-1].speaks[:2] != [f"{s} " for s in SENTENCES[1:]]:
        problems.append(f"the new connection was asked for {run.connections[-1].speaks}")
    if run.fragment_bytes is None:
        problems.append("the reply heard was not: sentence 1, part of 2, then 2 and 3 whole")
    if run.wire_gap is None or run.wire_gap > GAP_LIMIT_SECS:
        problems.append(f"re-spoken audio came {run.wire_gap} s after the last before the drop")
    if run.assistant_reply != BOOKING_REPLY:
        problems.append(f"the next LLM request has the reply as {run.assistant_reply!r}")
    if farewell(run.outcome.heard) != FAREWELL:
        problems.append(f"the caller did not hear the farewell: {run.outcome.heard}")
    if not run.hung_up:
        problems.append("no REST hang-up")
    if any("the call failed" in message for _, message in run.logs):
        problems.append("the call's handler raised")
    run.outcome.problems, run.outcome.survived = problems, not problems
    run.outcome.figures = _figures(run)
    return run


def _figures(run: DropRun) -> str:
    def secs(value: float | None) -> str:
        return "?" if value is None else f"{value:.2f} s"

    fragment = "?" if run.fragment_bytes is None else f"{run.fragment_bytes / 8000:.2f} s"
    refused = f", reconnect refused {run.refused}" if run.refused else ""
    elsewhere = run.underruns - bool(run.caller_gap)  # a gap at the cut is counted in both
    underruns = f" ({elsewhere} playout underruns elsewhere)" if elsewhere > 0 else ""
    return (
        f"{len(run.connections)} TTS connections{refused}; re-spoken audio {secs(run.wire_gap)} "
        f"after the last before the drop; caller heard a {secs(run.caller_gap)} gap{underruns} "
        f"and {fragment} of the cut sentence twice; next turn answered, call hung up by REST"
    )


async def _run(**fault) -> Outcome:
    return (await drop_mid_reply(**fault)).outcome


FAULTS = [
    Fault(
        "Deepgram TTS socket drops mid-reply",
        "TCP cut (no close frame) 0.5 s into the booking reply's 2nd sentence",
        _run,
    ),
    Fault(
        "Deepgram TTS drops mid-reply, reconnect refused once",
        "1011 close 0.5 s into the 2nd sentence; the next upgrade answered 503",
        partial(_run, drop_with=1011, refuse_after_drop=1),
    ),
]
