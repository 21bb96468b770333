"""LLM faults in the cascade: chat completions answers 500, stalls, or cuts its stream mid-reply.

Each scenario: the caller asks to book a table and the chat stand-in fails that turn. The
caller should hear an apology within 2 s of silence (after whatever part of the reply was
spoken), then ask again and hear the scripted answer, with the context sent for that turn
showing exactly what the caller heard.
"""

from dataclasses import dataclass, field
from functools import partial

from loguru import logger

from harness.faults import Fault, Outcome, bot_with, dial, heard_sentences, outcome_of, spoken_texts
from pipelines.declaration import ENGLISH_LINES
from recordings import RECORDINGS
from standins.audio import ULAW_SILENCE, pcm_to_ulaw
from standins.caller import BotTurn, SimulatedCall
from standins.openai_chat import (
    ChatFault,
    FaultKind,
    OpenAIChatStandIn,
    RecordedRequest,
    in_turn,
    saying,
)
from standins.playout import Stretch
from standins.script import BOOK_TABLE, BOOKING_REPLY, GREETING
from standins.speech import synthesize

BOOK_TABLE_WAV = RECORDINGS / "book_table.wav"
APOLOGY = ENGLISH_LINES["apology"]
CUT_AFTER_TOKENS = 6  # "Of course. A table for two": one sentence and a fragment
SPOKEN_BEFORE_CUT = ["Of course.", "A table for two"]  # as the TTS was given them
SILENCE_LIMIT_SECS = 2.0  # the caller's silence before the apology starts
# The LLM fails every request of the booking turn: its speculative ones (unheard: the turn
# end asks again), the one answering the turn and the bot's retry of it.
BOOKING_TURN = in_turn(1)
WHOLE_TURN = 99


@dataclass
class LLMFaultRun:
    """A call through one LLM fault: the outcome and its evidence."""

    outcome: Outcome
    requests: list[RecordedRequest] = field(default_factory=list)  # chat requests, in order
    first_turn: BotTurn | None = None  # what the caller heard after the failed turn
    second_turn: BotTurn | None = None  # ... and after asking again
    next_messages: list[dict] = field(default_factory=list)  # sent for the next turn (no system)
    apology_after: float | None = None  # seconds, the failed request's arrival → apology heard
    silence_before_apology: float | None = None  # seconds of nothing heard right before it
    logs: list[tuple[str, str]] = field(default_factory=list)  # (level, message), WARNING+

    @property
    def failed(self) -> RecordedRequest | None:
        """The last request the fault hit (the one the turn's answer waited on)."""
        return next((r for r in reversed(self.requests) if r.fault), None)


async def ask_twice(fault: ChatFault) -> LLMFaultRun:
    """The caller asks to book a table (the turn `fault` hits), listens, then asks again."""
    logs: list[tuple[str, str]] = []
    sink = logger.add(
        lambda m: logs.append((m.record["level"].name, m.record["message"])), level="WARNING"
    )
    try:
        async with bot_with(openai=OpenAIChatStandIn(faults=[fault])) as (bot, standins):
            call = await dial(bot)
            try:
                await call.listen()  # the greeting
                await call.say(BOOK_TABLE_WAV)
                first = await call.listen(timeout=10, quiet=1.5)
                await call.say(BOOK_TABLE_WAV)
                second = await call.listen(timeout=10, quiet=1.5)  # a playout gap is not its end
            finally:
                await call.hang_up()
            run = LLMFaultRun(
                outcome=Outcome(False, heard_sentences(call, spoken_texts(standins))),
                requests=list(standins.openai.requests),
                first_turn=first,
                second_turn=second,
                next_messages=_next_turn_messages(standins.openai.requests),
                logs=logs,
            )
            _time_apology(run, call)
    finally:
        logger.remove(sink)
    return run


def _time_apology(run: LLMFaultRun, call: SimulatedCall) -> None:
    """When the apology began to play, after the failed request and after the audio before it.

    Searched in all the audio heard since the request, joined: under load the playout can
    starve and split a sentence over two stretches.
    """
    if run.failed is None:
        return
    arrived = call.stream_time(run.failed.at)
    silence = bytes([ULAW_SILENCE])
    voice = pcm_to_ulaw(synthesize(APOLOGY).pcm).lstrip(silence)[:800]  # its first 0.1 s
    stretches = [s for s in call.heard if s.end > arrived]
    joined = b"".join(bytes(s.ulaw) for s in stretches)
    offset = joined.find(voice)
    if offset < 0:
        return
    heard_at, before = _stream_time_at(stretches, offset), arrived
    audible = len(joined[:offset].rstrip(silence))
    if audible:  # something played before it: the silence counts from its end
        before = max(arrived, _stream_time_at(stretches, audible - 1) + 1 / 8000)
    run.apology_after = heard_at - arrived
    run.silence_before_apology = heard_at - before


def _stream_time_at(stretches: list[Stretch], offset: int) -> float:
    """When the byte at `offset` of the stretches' joined audio played, in stream seconds."""
    for stretch in stretches:
        if offset < len(stretch.ulaw):
            return stretch.start + offset / 8000
        offset -= len(stretch.ulaw)
    raise ValueError("offset beyond the audio heard")


def _next_turn_messages(requests: list[RecordedRequest]) -> list[dict]:
    """The messages (no system prompt) of the last answered request: the next turn's."""
    answered = [r for r in requests if r.body and r.status == 200 and not r.fault]
    if not answered:
        return []
    return [m for m in answered[-1].body["messages"] if m.get("role") != "system"]


def judge(run: LLMFaultRun, *, heard: list[str], context: list[str]) -> LLMFaultRun:
    """The failed turn answered with `heard` (texts spoken in order); then all went on.

    `context`: the assistant messages the next turn's request should hold for the failed turn.
    """
    problems = []
    apologised = APOLOGY in heard
    if run.failed is None:
        problems.append("the stand-in injected nothing")
    if run.first_turn is None or not spoken_exactly(run.first_turn.ulaw, heard):
        problems.append(f"after the failed turn the caller did not hear exactly {heard}")
    if apologised and run.silence_before_apology is None:
        problems.append("the apology was never heard")
    elif apologised and run.silence_before_apology >= SILENCE_LIMIT_SECS:
        problems.append(f"{run.silence_before_apology:.2f} s of silence before the apology")
    if not apologised and any("apologising" in message for _, message in run.logs):
        problems.append("the bot apologised although the turn was answered")
    if run.second_turn is None or not spoken_exactly(run.second_turn.ulaw, [BOOKING_REPLY]):
        problems.append("asking again did not get the booking reply")
    expected = _expected_context(context)
    if run.next_messages != expected:
        problems.append(f"the next turn sent {run.next_messages}, expected {expected}")
    run.outcome.figures = _figures(run, apologised)
    run.outcome.problems = problems
    run.outcome.survived = not problems
    return run


def _figures(run: LLMFaultRun, apologised: bool) -> str:
    tries = sum(1 for r in run.requests if r.fault)
    parts = [f"{tries} request(s) failed, {len(run.requests)} in all"]
    if apologised and run.apology_after is not None:
        parts.append(
            f"apology heard {run.apology_after:.2f} s after the failed request reached the LLM "
            f"({run.silence_before_apology:.2f} s of silence before it)"
        )
    parts.append("next turn answered" if run.second_turn else "no next turn")
    return "; ".join(parts)


def _expected_context(assistant: list[str]) -> list[dict]:
    return [
        {"role": "assistant", "content": GREETING},
        {"role": "user", "content": BOOK_TABLE},
        *({"role": "assistant", "content": text} for text in assistant),
        {"role": "user", "content": BOOK_TABLE},
    ]


def spoken_exactly(ulaw: bytes, texts: list[str]) -> bool:
    """`ulaw` is the stand-in voice saying each of `texts` in order, with only silence between.

    The last text may fall short by one 40 ms chunk (the playout's last tick).
    """
    silence = bytes([ULAW_SILENCE])
    rest = ulaw
    for i, text in enumerate(texts):
        voice = pcm_to_ulaw(synthesize(text).pcm).strip(silence)
        rest = rest.lstrip(silence)
        part, rest = rest[: len(voice)], rest[len(voice) :]
        whole = part == voice or (i == len(texts) - 1 and voice.startswith(part))
        if not whole or len(part) < len(voice) - 320:
            return False
    return not rest.strip(silence)


async def llm_500() -> LLMFaultRun:
    """HTTP 500 on the booking turn, for every try and the bot's retry."""
    run = await ask_twice(ChatFault("500", BOOKING_TURN, times=WHOLE_TURN))
    return judge(run, heard=[APOLOGY], context=[APOLOGY])


async def llm_500_once() -> LLMFaultRun:
    """One HTTP 500 on the booking turn: the bot's quick retry answers it."""
    run = await ask_twice(ChatFault("500", saying("book a table"), times=1))
    return judge(run, heard=[BOOKING_REPLY], context=[BOOKING_REPLY])


async def llm_timeout(kind: FaultKind = "stall") -> LLMFaultRun:
    """The booking turn's request is accepted and never answered.

    `kind`: "stall" sends nothing at all, "stall-after-headers" sends 200 and the headers.
    """
    run = await ask_twice(ChatFault(kind, BOOKING_TURN, times=WHOLE_TURN))
    return judge(run, heard=[APOLOGY], context=[APOLOGY])


async def llm_stream_cut() -> LLMFaultRun:
    """The booking turn's stream is dropped after a sentence and a fragment."""
    fault = ChatFault("cut", BOOKING_TURN, times=WHOLE_TURN, after_tokens=CUT_AFTER_TOKENS)
    run = await ask_twice(fault)
    heard = [*SPOKEN_BEFORE_CUT, APOLOGY]
    return judge(run, heard=heard, context=[" ".join(SPOKEN_BEFORE_CUT), APOLOGY])


FAULTS = [
    Fault(
        "LLM 500",
        "chat completions answers HTTP 500 to every request of the booking turn (and retries)",
        partial(outcome_of, llm_500),
    ),
    Fault(
        "LLM 500 once",
        "chat completions answers HTTP 500 once to the booking turn",
        partial(outcome_of, llm_500_once),
    ),
    Fault(
        "LLM timeout",
        "chat completions accepts the booking turn's requests and never answers",
        partial(outcome_of, llm_timeout),
    ),
    Fault(
        "LLM stream cut",
        f"the booking turn's streams are dropped after {CUT_AFTER_TOKENS} tokens: no finish_reason,"
        " no [DONE]",
        partial(outcome_of, llm_stream_cut),
    ),
]
