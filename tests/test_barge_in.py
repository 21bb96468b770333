"""The caller talks over the bot: everything stops at once."""

from harness.barge_in import old_audio_after
from standins.openai_replies import LONG_REPLY, Reply, last_user_text
from standins.script import dial_into_long_reply


def long_then_short(messages, tools):
    """A long reply to the booking, a short one to whatever interrupts it."""
    if "book a table" in last_user_text(messages).lower():
        return Reply(text=LONG_REPLY)
    return Reply(text="Okay.")


async def test_barge_in_clears_twilio_and_cancels_the_llm_and_tts(bot, standins, data):
    standins.openai.responder = long_then_short
    standins.openai.tokens_per_second = 8  # still streaming when the caller cuts in
    call = await dial_into_long_reply(bot.url)
    interrupted_at = await call.say(data / "cancel.wav")

    clears = [e for e in call.events("clear") if e.t > interrupted_at]
    assert clears, "Twilio got a clear"
    cleared = clears[0].t
    after = await call.listen()
    # No media of the cut reply after the clear (each media is attributed by the reply id
    # of the mark that follows it); the short answer to the interruption is heard.
    assert old_audio_after(call, cleared) == 0
    assert after.duration < 2.0
    long_response = standins.openai.response_to("book a table")
    assert long_response.cancelled and long_response.tokens_sent < long_response.tokens_planned
    assert any(c.clears for c in standins.tts.connections), "Deepgram TTS got Clear"
    await call.hang_up()
