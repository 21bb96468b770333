"""STT faults (Deepgram nova, the default pipeline): a socket cut mid-utterance, a refused key.

The scenarios return the evidence with the outcome (`STTDropEvidence`, `RefusalEvidence`) so
that tests can assert on the stand-ins' records as well as on the verdict.
"""

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from loguru import logger

from harness.faults import Fault, Outcome, bot_with, dial, heard_sentences, spoken_texts
from standins.audio import pcm_to_ulaw, read_wav, ulaw_to_pcm
from standins.caller import SimulatedCall
from standins.deepgram_stt import DeepgramSTTStandIn, STTConnection
from standins.openai_chat import OpenAIChatStandIn
from standins.script import BOOK_TABLE, BOOKING_REPLY
from standins.speech import DATA
from standins.stack import StandIns

UNAVAILABLE = (
    "Sorry, I can't take your call right now because of a technical problem. "
    "Please call back in a few minutes. Goodbye."
)
DROP_AFTER_SPEECH_SECS = 1.2  # of book_table.wav's 3.0 s of speech: "…book a" has been said


@dataclass
class STTDropEvidence:
    """What the stand-ins recorded of a call whose STT socket was cut mid-utterance."""

    connections: list[STTConnection]
    utterance: bytes  # the caller's speech as the bot decodes it (μ-law round trip)
    user_messages: list[str]  # the user messages of the last chat request
    reply_after_s: float | None  # from the end of the caller's speech to the reply's start
    heard: list[str]
    # Transcripts (interim or final) the STT sent once the reply was playing, and the Twilio
    # `clear`s then: re-sent audio transcribed late would cut the reply like a barge-in.
    results_during_reply: list[str] = field(default_factory=list)
    clears_during_reply: int = 0
    backlog_warnings: list[str] = field(default_factory=list)  # the bot's, while it ran


@dataclass
class RefusalEvidence:
    """What the stand-ins recorded of a call whose provider refused the API key."""

    standins: StandIns
    call: SimulatedCall
    heard: list[str]
    heard_unavailable: bool
    hung_up_via_rest: bool
    closed_after_s: float | None  # from the start of the stream
    calls_left: int  # in the bot's /health, once the call ended


async def drop_mid_utterance(
    *, drop_with: Literal["abort", 1011] = "abort", refuse_after_drop: int = 0
) -> tuple[Outcome, STTDropEvidence]:
    """The STT socket dies 1.2 s into "Hi, I'd like to book a table…"; the bot must still answer."""
    stt = DeepgramSTTStandIn(
        drop_after_speech_secs=DROP_AFTER_SPEECH_SECS,
        drop_with=drop_with,
        refuse_after_drop=refuse_after_drop,
    )
    pcm = read_wav(DATA / "book_table.wav")
    utterance = ulaw_to_pcm(pcm_to_ulaw(pcm))
    warnings: list[str] = []
    sink = logger.add(
        lambda m: warnings.append(m.record["message"]),
        level="WARNING",
        filter="services.audio_backlog",
    )
    try:
        async with bot_with(stt=stt) as (bot, standins):
            call = await dial(bot)
            await call.listen()
            await call.say(pcm)
            spoke_until = call.now()
            try:
                reply = await call.listen(timeout=20)
                reply_start: float | None = reply.start
            except TimeoutError:
                reply_start = None
            chat = standins.openai.requests
            messages = chat[-1].body["messages"] if chat else []
            users = [m["content"] for m in messages if m["role"] == "user"]
            reply_after = None if reply_start is None else reply_start - spoke_until
            evidence = STTDropEvidence(list(stt.connections), utterance, users, reply_after, [])
            evidence.heard = heard_sentences(call, spoken_texts(standins))
            if reply_start is not None:
                _during_reply(evidence, call, reply_start)
            await call.hang_up()
    finally:
        logger.remove(sink)
    evidence.backlog_warnings = warnings
    return _judge_drop(evidence), evidence


def _during_reply(e: STTDropEvidence, call: SimulatedCall, reply_start: float) -> None:
    """What reached the bot, and the phone, from the STT once the reply was playing."""
    for conn in e.connections:
        for message, at in zip(conn.sent, conn.sent_at, strict=True):
            alternatives = message.get("channel", {}).get("alternatives") or [{}]
            transcript = alternatives[0].get("transcript")
            if transcript and call.stream_time(at) >= reply_start:
                e.results_during_reply.append(transcript)
    e.clears_during_reply = sum(1 for c in call.events("clear") if c.t >= reply_start)


def _judge_drop(e: STTDropEvidence) -> Outcome:
    problems = []
    conns = e.connections
    if not conns or not conns[0].dropped:
        problems.append("the stand-in never cut the STT socket")
    if len(conns) < 2:
        problems.append(f"the bot did not reconnect ({len(conns)} STT connection)")
    elif e.utterance not in conns[-1].audio:
        problems.append("the new STT connection did not get the whole utterance")
    if e.user_messages != [BOOK_TABLE]:
        problems.append(f"the LLM got {e.user_messages!r}, not {BOOK_TABLE!r}")
    if " ".join(e.heard[-3:]) != BOOKING_REPLY:
        problems.append("the caller did not hear the booking reply")
    if e.results_during_reply:
        problems.append(f"transcripts came while the reply played: {e.results_during_reply!r}")
    if e.clears_during_reply:
        problems.append(f"the reply was cut ({e.clears_during_reply} Twilio clear)")
    problems += [f"the bot's backlog: {w}" for w in e.backlog_warnings]
    return Outcome(not problems, e.heard, _drop_figures(e), problems)


def _drop_figures(e: STTDropEvidence) -> str:
    conns = e.connections
    if len(conns) < 2 or conns[0].closed_at is None:
        return ""
    first, second = conns[0], conns[-1]
    gap = second.opened_at - first.closed_at
    start = first.audio.find(e.utterance[:1600])
    sent_first = (len(first.audio) - start) / 16000 if start >= 0 else 0.0
    before = resent_before_utterance(e)
    resent = (before or 0.0) + sent_first
    reply = f"{e.reply_after_s:.2f} s" if e.reply_after_s is not None else "never"
    return (
        f"cut {sent_first:.2f} s into the utterance; new socket {gap:.2f} s later; "
        f"{resent:.1f} s of audio resent ({before or 0.0:.1f} s before the utterance); "
        f"reply {reply} after the caller stopped"
    )


def resent_before_utterance(e: STTDropEvidence) -> float | None:
    """Seconds of audio the last STT connection got before the utterance (None: not found)."""
    if not e.connections:
        return None
    at = e.connections[-1].audio.find(e.utterance[:1600])
    return at / 16000 if at >= 0 else None


async def refused_key(
    *, stage: Literal["stt", "llm", "tts"] = "stt"
) -> tuple[Outcome, RefusalEvidence]:
    """One provider refuses the API key: the caller hears an apology and the bot hangs up.

    "stt": Deepgram /v1/listen answers 401 (the TTS, on the same key, still works); "llm":
    chat completions answers 401 on the first turn; "tts": Deepgram /v1/speak answers 401
    (after the greeting was cached), so no apology can be spoken.
    """
    knobs = {}
    if stage == "stt":
        knobs["stt"] = DeepgramSTTStandIn(reject_with_status=401)
    elif stage == "llm":
        knobs["openai"] = OpenAIChatStandIn(api_key="not-the-bot's-key")
    async with bot_with(**knobs) as (bot, standins):
        if stage == "tts":
            standins.tts.api_key = "not-the-bot's-key"  # the greeting is cached by now
        call = await dial(bot)
        if stage == "llm":
            await call.listen()
            await call.say(DATA / "book_table.wav")
        try:
            await call.wait_closed(timeout=25)
            closed_after = call.now()
        except TimeoutError:
            closed_after = None
        hung_up = await standins.twilio.wait_for_hangup(call.call_sid, timeout=5)
        for _ in range(100):  # the server forgets the call just after the stream closes
            if not bot.app.state.calls:
                break
            await asyncio.sleep(0.05)
        heard_now = heard_sentences(call, spoken_texts(standins))
        evidence = RefusalEvidence(
            standins=standins,
            call=call,
            heard=heard_now,
            heard_unavailable=UNAVAILABLE in " ".join(heard_now),  # whole or by sentence
            hung_up_via_rest=bool(hung_up),
            closed_after_s=closed_after,
            calls_left=len(bot.app.state.calls),
        )
        await call.hang_up()
    return _judge_refusal(evidence, stage), evidence


def _judge_refusal(e: RefusalEvidence, stage: str) -> Outcome:
    problems = []
    if stage == "tts":
        if "technical problem" in " ".join(e.heard):
            problems.append("an apology was heard from a TTS that refused its key")
    elif not e.heard_unavailable:
        problems.append("the caller did not hear the whole `unavailable` line")
    if e.closed_after_s is None:
        problems.append("the bot did not end the call")
    if not e.hung_up_via_rest:
        problems.append("no REST hang-up reached Twilio")
    if e.calls_left:
        problems.append(f"/health still counts {e.calls_left} call(s)")
    stt = e.standins.stt
    attempts = len(stt.refused) + len(stt.connections)
    if stage == "stt" and attempts > 3:
        problems.append(f"the STT tried to connect {attempts} times after a 401")
    closed = f"{e.closed_after_s:.1f} s" if e.closed_after_s is not None else "never"
    figures = f"call closed {closed} after it started; STT connection attempts: {attempts}"
    return Outcome(not problems, e.heard, figures, problems)


async def _drop() -> Outcome:
    return (await drop_mid_utterance())[0]


async def _refused() -> Outcome:
    return (await refused_key(stage="stt"))[0]


FAULTS = [
    Fault(
        "STT socket drops mid-utterance",
        "Deepgram /v1/listen cuts the TCP connection (no close frame) 1.2 s into the caller's "
        "speech",
        _drop,
    ),
    Fault(
        "STT refuses the API key",
        "Deepgram /v1/listen answers every upgrade with 401 (the TTS, on the same key, works)",
        _refused,
    ),
]
