"""Over a real call: the turn end hears the caller's words as well as their voice."""

import re

from calls import heard_matches
from standins.script import BOOK_TABLE, BOOKING_REPLY, dial

VERDICT = re.compile(r"Smart Turn (\w+) \(p=([\d.]+)\), words end (.+): the turn ends ([\d.]+) s")


async def test_a_sentence_smart_turn_hears_as_unfinished_waits_the_speech_timeout_not_a_second(
    bot, standins, data, debug_lines
):
    call = await dial(bot.url)
    await call.listen()
    await call.say(data / "book_table.wav")
    reply = await call.listen()
    await call.hang_up()

    assert heard_matches(reply.ulaw, BOOKING_REPLY)
    verdicts = [m.groups() for m in map(VERDICT.search, debug_lines) if m]
    # The synthesized "…tomorrow at seven." sounds unfinished to Smart Turn (p ≈ 0.1): alone,
    # that held the turn `smart_turn_max_secs` (1 s); its words end a sentence.
    state, _p, words, wait = verdicts[-1]
    assert (state, words, wait) == ("incomplete", "on a sentence's end", "0.4")
    assert any(f"speculating on [{BOOK_TABLE}]" in line for line in debug_lines)
    assert any("the turn ended as speculated" in line for line in debug_lines)
