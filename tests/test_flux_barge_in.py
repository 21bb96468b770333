"""With Deepgram Flux ending turns, an "mm-hm" over the bot only pauses it; speech cuts it off."""

import asyncio
import time
from pathlib import Path

import pytest
from loguru import logger
from test_stt_providers_call import BOOK_TABLE, BOT, FLUX, heard_matches, long_then_short

from calls import user_texts
from harness.barge_in import old_audio_after
from harness.false_barge_in import mm_hm
from pipelines.declaration import load_declaration
from processors.heard_context import INTERRUPTED_NOTE
from server.local import serve_locally
from standins.openai_replies import LONG_REPLY
from standins.script import dial, long_reply_to_bookings
from standins.speech import synthesize
from standins.stack import running_standins

OPENING_HOURS = "What time do you open on Saturday?"


@pytest.fixture
async def stack():
    """The stand-ins, whose recordings the tests read."""
    async with running_standins() as standins:
        yield standins


def serve_flux(stack, tmp_path: Path):
    """The real server answering with the default bot's turn settings and Flux as its STT."""
    path = tmp_path / "flux.toml"
    path.write_text(BOT + FLUX, encoding="utf-8")
    declaration = load_declaration(path)
    assert (declaration.turn.min_barge_in_secs, declaration.turn.min_barge_in_words) == (0.7, 2)
    return serve_locally(stack.env() | {"PIPELINE": "flux"}, {"flux": declaration})


@pytest.fixture
def barge_ins() -> list[float]:
    """When (time.monotonic()) the bot recorded each barge-in: its reply was cut."""
    times: list[float] = []
    sink = logger.add(
        lambda _message: times.append(time.monotonic()),
        level="INFO",
        filter=lambda record: record["message"].startswith("barge-in: the caller heard"),
    )
    yield times
    logger.remove(sink)


async def test_with_flux_an_mm_hm_over_the_bot_pauses_it_and_never_reaches_the_llm(
    stack, tmp_path, data, barge_ins
):
    stack.openai.responder = long_reply_to_bookings
    async with serve_flux(stack, tmp_path) as bot:
        call = await dial(bot.url)
        await call.listen()
        await call.say(data / "book_table.wav")
        await call.wait_for_bot_audio(timeout=10)
        await asyncio.sleep(1.0)
        backchannel_at = await call.say(mm_hm())
        reply = await call.listen(timeout=30, quiet=1.5, after=backchannel_at - 1.5)
        heard = sum(len(s.ulaw) for s in call.heard if s.start >= reply.start) / 8000
        requests_after_mm_hm = len(stack.openai.requests)
        await call.say(data / "opening_hours.wav")
        await call.listen()
        await call.hang_up()

    (flux,) = stack.flux.connections
    assert flux.turns == [BOOK_TABLE, "Mm-hmm.", OPENING_HOURS], "Flux proposed the mm-hm turn"
    paused_at = next(e.t for e in call.events("clear") if e.t > backchannel_at)
    mm_hm_end = next(e.t for e in call.events("sent_speech_end") if e.t > backchannel_at)
    assert paused_at < mm_hm_end, "the bot paused while the caller was still saying mm-hm"
    assert heard >= synthesize(LONG_REPLY).duration_s - 0.1, "then every word played"
    assert barge_ins == [], "no interruption"
    assert requests_after_mm_hm == 1, "no LLM request for the mm-hm"
    long_response = stack.openai.response_to("book a table")
    assert long_response.completed and not long_response.cancelled
    assert not any(c.clears for c in stack.tts.connections), "Deepgram TTS never got Clear"
    request = stack.openai.requests[-1].body
    assert user_texts(request) == [BOOK_TABLE, OPENING_HOURS], "no 'Mm-hmm.' in the context"
    said = [m for m in request["messages"] if m["role"] == "assistant"][-1]["content"]
    assert " ".join(said.split()) == " ".join(LONG_REPLY.split()), "no interruption in context"


async def test_with_flux_speech_over_the_bot_still_cuts_it_off(stack, tmp_path, data, barge_ins):
    stack.openai.responder = long_then_short
    stack.openai.tokens_per_second = 8  # still streaming when the caller cuts in
    async with serve_flux(stack, tmp_path) as bot:
        call = await dial(bot.url)
        await call.listen()
        await call.say(data / "book_table.wav")
        await call.wait_for_bot_audio(timeout=10)
        await asyncio.sleep(1.0)
        interrupted_at = await call.say(data / "opening_hours.wav")
        after = await call.listen(after=interrupted_at)
        await call.hang_up()

    clears = [e for e in call.events("clear") if e.t > interrupted_at]
    assert clears, "Twilio got a clear"
    assert old_audio_after(call, clears[0].t) == 0, "no audio of the cut reply after it"
    (barge_in,) = barge_ins
    # The pause comes with the local VAD (~0.2 s); the barge-in once the speech has proved
    # itself: 0.7 s past the VAD's start, or two words from Flux.
    cut = call.stream_time(barge_in)
    spoke_until = next(e.t for e in call.events("sent_speech_end") if e.t > interrupted_at)
    assert clears[0].t < cut < spoke_until, (clears[0].t, cut, spoke_until)
    long_response = stack.openai.response_to("book a table")
    assert long_response.cancelled and long_response.tokens_sent < long_response.tokens_planned
    assert any(c.clears for c in stack.tts.connections), "Deepgram TTS got Clear"
    assert heard_matches(after.ulaw, "Okay.")
    (flux,) = stack.flux.connections
    assert flux.turns == [BOOK_TABLE, OPENING_HOURS]
    request = stack.openai.requests[-1].body
    assert user_texts(request) == [BOOK_TABLE, OPENING_HOURS]
    said = [m for m in request["messages"] if m["role"] == "assistant"][-1]["content"]
    assert INTERRUPTED_NOTE in said, "the context knows the reply was cut"
