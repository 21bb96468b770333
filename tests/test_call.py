"""A whole phone call, over real sockets, against the stand-ins, with real speech."""

import asyncio

from calls import final_transcripts, heard_matches, user_texts
from standins.script import BOOK_TABLE, BOOKING_REPLY, dial


async def test_the_caller_hears_the_greeting_then_an_answer_to_what_they_said(bot, standins, data):
    greeting_text = "Thanks for calling Luigi's. How can I help you today?"
    call = await dial(bot.url)
    greeting = await call.listen()
    assert heard_matches(greeting.ulaw, greeting_text)

    await call.say(data / "book_table.wav")
    reply = await call.listen()

    assert " ".join(final_transcripts(standins)) == BOOK_TABLE
    request = standins.openai.requests[-1].body
    assert request["messages"][0]["role"] == "system"
    assert "receptionist of Luigi's" in request["messages"][0]["content"]
    assert user_texts(request) == [BOOK_TABLE]
    assert request["stream"] is True
    assert heard_matches(reply.ulaw, BOOKING_REPLY)
    assert call.events("media"), "the reply arrived as Twilio media messages"
    await call.hang_up()


async def test_the_bot_ends_the_call_after_its_farewell_and_hangs_up_through_rest(
    bot, standins, data
):
    call = await dial(bot.url)
    await call.listen()
    await call.say(data / "goodbye.wav")
    farewell = await call.listen()
    assert heard_matches(farewell.ulaw, "Thanks for calling Luigi's. Goodbye!")
    await call.wait_closed(timeout=10)
    assert await standins.twilio.wait_for_hangup(call.call_sid, timeout=5)
    assert standins.twilio.hangups == [call.call_sid]
    assert standins.twilio.requests[-1].auth_ok


async def test_the_caller_hanging_up_mid_reply_ends_the_call_within_a_second(bot, standins, data):
    from standins.openai_chat import fixed_reply

    standins.openai.responder = fixed_reply()
    standins.openai.tokens_per_second = 10
    before = {t for t in asyncio.all_tasks()}
    call = await dial(bot.url)
    await call.listen()
    await call.say(data / "book_table.wav")
    await call.wait_for_bot_audio(timeout=10)
    await asyncio.sleep(0.5)
    hung_up = asyncio.get_running_loop().time()
    await call.hang_up()
    while bot.app.state.calls:
        await asyncio.sleep(0.01)
    ended_in = asyncio.get_running_loop().time() - hung_up
    assert ended_in < 3.0  # at once: no wait for the reply, the LLM or a timeout (~0.1 s idle)
    await asyncio.sleep(0.2)  # let closed sockets finish their close handshakes
    left = {t for t in asyncio.all_tasks() if t not in before and not t.done()}
    left.discard(asyncio.current_task())
    assert not left, f"tasks left behind: {[t.get_name() for t in left]}"
    assert all(c.closed for c in standins.stt.connections + standins.tts.connections)
    assert standins.openai.responses[-1].cancelled
    assert standins.twilio.hangups == []  # the caller hung up: nothing to hang up


async def test_two_concurrent_calls_never_cross(bot, standins, data):
    first, second = await asyncio.gather(dial(bot.url), dial(bot.url))
    await asyncio.gather(first.listen(), second.listen())
    await asyncio.gather(first.say(data / "book_table.wav"), second.say(data / "opening_hours.wav"))
    replies = await asyncio.gather(first.listen(), second.listen())
    assert heard_matches(replies[0].ulaw, BOOKING_REPLY)
    assert heard_matches(replies[1].ulaw, "We open at nine on Saturday and close at eleven.")
    asked = [user_texts(r.body) for r in standins.openai.requests]
    said = [BOOK_TABLE, "What time do you open on Saturday?"]
    # Each request holds one caller's words (or, speculating at a pause, their beginning).
    assert all(len(users) == 1 and any(s.startswith(users[0]) for s in said) for users in asked)
    assert {users[0] for users in asked if users[0] in said} == set(said)
    await asyncio.gather(first.hang_up(), second.hang_up())
