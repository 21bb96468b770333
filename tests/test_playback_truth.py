"""The bot knows what the caller heard: honest context after barge-in, clean endings."""

import asyncio

import pytest

from calls import heard_matches
from harness.barge_in import barge_in, offsets
from processors.heard_context import INTERRUPTED_NOTE, NOTHING_HEARD_NOTE
from standins.openai_replies import LONG_REPLY
from standins.script import dial, long_reply_to_bookings
from standins.speech import synthesize

FAREWELL = "Thanks for calling Luigi's. Goodbye!"


@pytest.mark.parametrize(("offset", "at_s"), list(offsets().items()))
async def test_after_a_barge_in_the_context_holds_exactly_what_was_heard(
    bot, standins, offset, at_s
):
    standins.openai.responder = long_reply_to_bookings
    result = await barge_in(bot.url, standins, offset, at_s)
    assert result.audio_after_clear == 0, "no audio of the cut reply after Twilio's clear"
    assert result.words_off <= 1, (result.heard_words, result.context_words)
    request = standins.openai.requests[-1].body
    cut = [m for m in request["messages"] if m["role"] == "assistant"][-1]["content"]
    # At the first word, the clear can land before half of it played: nothing was heard.
    assert result.context_words or offset == "first word"
    assert (INTERRUPTED_NOTE if result.context_words else NOTHING_HEARD_NOTE) in cut


async def test_the_farewell_plays_to_the_end_before_the_rest_hang_up(bot, standins, data):
    call = await dial(bot.url)
    await call.listen()
    await call.say(data / "goodbye.wav")
    await call.wait_closed(timeout=15)
    assert await standins.twilio.wait_for_hangup(call.call_sid, timeout=5)
    farewell = [s for s in call.heard if s.start >= call.events("sent_speech_end")[-1].t]
    assert heard_matches(b"".join(bytes(s.ulaw) for s in farewell), FAREWELL), "heard in full"
    (hangup,) = [r for r in standins.twilio.requests if r.form.get("Status") == "completed"]
    assert call.stream_time(hangup.at) >= farewell[-1].end - 0.05


async def test_a_caller_hanging_up_during_the_farewell_ends_the_call_cleanly(
    bot, standins, data, log_lines
):
    call = await dial(bot.url)
    await call.listen()
    await call.say(data / "goodbye.wav")
    await call.wait_for_bot_audio(timeout=10)
    await asyncio.sleep(0.3)
    await call.hang_up()
    async with asyncio.timeout(2):
        while bot.app.state.calls:
            await asyncio.sleep(0.01)
    assert standins.twilio.hangups == []  # the caller already hung up
    assert not [line for line in log_lines if "failed" in line]


async def test_replies_play_one_after_another_never_over_each_other(bot, data):
    call = await dial(bot.url)
    await call.listen()
    for recording in ("book_table.wav", "opening_hours.wav"):
        await call.say(data / recording)
        await call.listen()
    await call.hang_up()
    stretches = call.heard
    assert all(a.end <= b.start + 0.001 for a, b in zip(stretches, stretches[1:], strict=False))


async def test_an_mm_hm_while_the_bot_talks_pauses_it_then_the_whole_reply_plays(
    bot, standins, data
):
    from harness.false_barge_in import mm_hm

    standins.openai.responder = long_reply_to_bookings
    call = await dial(bot.url)
    await call.listen()
    await call.say(data / "book_table.wav")
    await call.wait_for_bot_audio(timeout=10)
    await asyncio.sleep(1.0)
    backchannel_at = await call.say(mm_hm())
    reply = await call.listen(timeout=30, quiet=1.5, after=backchannel_at - 1.5)
    assert [e for e in call.events("clear") if e.t > backchannel_at], "the bot paused at once"
    heard = sum(len(s.ulaw) for s in call.heard if s.start >= reply.start - 1.5) / 8000
    assert heard >= synthesize(LONG_REPLY).duration_s - 0.1, "then every word played"
    await call.say(data / "opening_hours.wav")
    await call.listen()
    request = standins.openai.requests[-1].body
    said = [m for m in request["messages"] if m["role"] == "assistant"][-1]["content"]
    assert " ".join(said.split()) == " ".join(LONG_REPLY.split()), "no interruption in context"
    await call.hang_up()
