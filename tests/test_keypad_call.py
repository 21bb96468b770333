"""The caller's keypad on a whole call: digits become a turn, a key barges in, 9 repeats."""

import re

from calls import heard_matches, user_texts
from harness.barge_in import old_audio_after
from standins.openai_replies import Reply, last_user_text
from standins.script import GREETING, dial, dial_into_long_reply, long_reply_to_bookings


def reads_back_the_keys(messages: list[dict], tools: list[dict] | None) -> Reply:
    """The receptionist, who reads back the digits of a keypad turn."""
    said = last_user_text(messages)
    if said.startswith("The caller pressed"):
        digits = re.findall(r"\d", said)
        return Reply(text=f"Thank you. I found booking {' '.join(digits)}.")
    return long_reply_to_bookings(messages, tools)


async def test_digits_become_one_turn_and_the_caller_hears_the_answer(bot, standins):
    standins.openai.responder = reads_back_the_keys
    call = await dial(bot.url)
    greeting = await call.listen()
    assert heard_matches(greeting.ulaw, GREETING)

    await call.press("4217#")
    reply = await call.listen()

    (request,) = standins.openai.requests
    assert user_texts(request.body) == ["The caller pressed 4 2 1 7 #"]
    assert heard_matches(reply.ulaw, "Thank you. I found booking 4 2 1 7.")
    last_key = call.events("key")[-1]
    assert [e.detail for e in call.events("key")] == list("4217#")
    assert greeting.end < call.events("key")[0].t and last_key.t < reply.start
    await call.hang_up()


async def test_a_key_cuts_the_bot_off_at_once_and_the_context_says_what_was_heard(bot, standins):
    standins.openai.responder = reads_back_the_keys
    standins.openai.tokens_per_second = 8  # still streaming when the key cuts it
    call = await dial_into_long_reply(bot.url)

    pressed = await call.press("2")
    after = await call.listen()

    clears = [e for e in call.events("clear") if e.t > pressed]
    assert clears, "Twilio got a clear: a key needs no minimum of speech"
    assert old_audio_after(call, clears[0].t) == 0, "no audio of the cut reply after it"
    long_reply = standins.openai.response_to("book a table")
    assert long_reply.cancelled and long_reply.tokens_sent < long_reply.tokens_planned
    assert heard_matches(after.ulaw, "Thank you. I found booking 2.")
    answer = standins.openai.requests[-1].body
    assert user_texts(answer)[-1] == "The caller pressed 2"
    cut = [m["content"] for m in answer["messages"] if m["role"] == "assistant"][-1]
    assert cut.startswith("Thank you for calling") and "[The caller interrupted" in cut
    await call.hang_up()


async def test_the_repeat_key_says_the_last_reply_again_without_the_llm(bot, standins, data):
    call = await dial(bot.url)
    await call.listen()
    await call.say(data / "opening_hours.wav")
    reply = await call.listen()
    requests = len(standins.openai.requests)

    await call.press("9")
    again = await call.listen()

    answer = "We open at nine on Saturday and close at eleven."
    assert heard_matches(reply.ulaw, answer) and heard_matches(again.ulaw, answer)
    assert len(standins.openai.requests) == requests, "no LLM request for the shortcut"
    await call.hang_up()
