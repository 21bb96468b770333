"""Speculative replies (the default), over a real call: the reply is synthesized in the caller's
pause, held until the turn ends; a caller who goes on never hears it, nor its tool calls."""

import re

from calls import heard_matches, user_texts
from standins.audio import SAMPLE_RATE, read_wav, voice_span
from standins.script import BOOK_TABLE, BOOKING_REPLY, dial

GOODBYE = "Thanks, that's all. Goodbye."
OPENING = "What time do you open on Saturday?"
YES = "Yes, that works."


def voice(path) -> bytes:
    """The recording's voice, without the silence around it."""
    pcm = read_wav(path)
    start, end = voice_span(pcm)
    return pcm[2 * int(start * SAMPLE_RATE) : 2 * int(end * SAMPLE_RATE)]


def chat_requests(standins) -> list[dict]:
    return [r.body for r in standins.openai.requests if r.status == 200]


async def test_the_reply_built_in_the_pause_is_the_one_the_caller_hears(
    bot, standins, data, debug_lines
):
    call = await dial(bot.url)
    await call.listen()
    await call.say(data / "book_table.wav")
    reply = await call.listen()

    assert heard_matches(reply.ulaw, BOOKING_REPLY)
    asked = [user_texts(r)[-1] for r in chat_requests(standins)]
    assert asked[-1] == BOOK_TABLE, "the reply heard answers the whole turn"
    assert all(BOOK_TABLE.startswith(words) for words in asked), "pauses inside: its beginnings"
    assert any(f"speculating on [{BOOK_TABLE}]" in line for line in debug_lines)
    assert any("the turn ended as speculated" in line for line in debug_lines)
    # The TTS ran ahead: audio of the reply was ready, held, when the turn ended.
    released = [re.search(r"releasing the reply \((\d+) ms", line) for line in debug_lines]
    assert [int(m[1]) for m in released if m][-1] > 0
    await call.hang_up()


async def test_a_caller_who_goes_on_after_a_pause_never_hears_the_speculative_reply(
    bot, standins, data, debug_lines
):
    call = await dial(bot.url)
    await call.listen()
    # A speculation starts; the turn goes on. (Short of the VAD's stop: after "Saturday?", a
    # finished sentence, the turn ends 0.5 s after the voice, and the caller's "Yes" would
    # race the VAD's start to it.)
    pause = bytes(2 * int(0.2 * SAMPLE_RATE))
    await call.say(voice(data / "opening_hours.wav") + pause + voice(data / "yes.wav"))
    reply = await call.listen()
    await call.say(data / "book_table.wav")
    await call.listen()

    requests = chat_requests(standins)
    assert user_texts(requests[0]) == [OPENING], "speculated on the words before the pause"
    assert any("withdrawn (the caller went on)" in line for line in debug_lines)
    whole_turn = f"{OPENING} {YES}"
    turn = [user_texts(r)[0] for r in requests if len(user_texts(r)) == 1]
    assert turn[-1] == whole_turn, "the turn answered as a whole"
    assert len(turn) <= 4, "at most three speculations a turn, then the turn's own request"
    assert len(call.heard) == 3, "greeting, one reply to the whole turn, the booking reply"
    # The context holds the turn once, and the reply the caller heard: nothing of the first.
    last = requests[-1]["messages"]
    assert [m["role"] for m in last[1:]] == ["assistant", "user", "assistant", "user"]
    assert last[2]["content"] == whole_turn and last[-1]["content"] == BOOK_TABLE
    assert heard_matches(reply.ulaw, last[3]["content"])
    await call.hang_up()


async def test_a_speculative_reply_asking_to_hang_up_is_refused_while_the_caller_goes_on(
    bot, standins, data, debug_lines
):
    call = await dial(bot.url)
    await call.listen()
    goodbye = read_wav(data / "goodbye.wav")
    goodbye = goodbye[: 2 * int(voice_span(goodbye)[1] * SAMPLE_RATE)]
    pause = bytes(2 * int(0.2 * SAMPLE_RATE))  # "that's all. Goodbye." — then they go on
    await call.say(goodbye + pause + read_wav(data / "book_table.wav"))
    reply = await call.listen()

    assert any("the speculative reply wants end_call" in line for line in debug_lines)
    assert heard_matches(reply.ulaw, BOOKING_REPLY), "the turn answered as a whole"
    assert not call.closed.is_set() and call.call_sid not in standins.twilio.hangups
    await call.say(data / "opening_hours.wav")
    await call.listen()
    last = chat_requests(standins)[-1]["messages"]
    assert [m["role"] for m in last[1:]] == ["assistant", "user", "assistant", "user"]
    assert last[2]["content"] == f"{GOODBYE} {BOOK_TABLE}", "no end_call in the context"
    await call.hang_up()
