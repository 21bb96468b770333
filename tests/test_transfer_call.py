"""Transfers to a person, cold and warm, through whole calls against the stand-ins."""

import asyncio

from calls import heard_matches
from standins.script import dial

HANDOFF = "Of course. I'm putting you through to the manager now."
MANAGER = "+15555550100"
CALLED = "+15557650000"  # the number the simulated caller dials


def heard_all_before(call, request) -> bool:
    """Whether the caller's phone had played all the bot's audio when `request` reached Twilio.

    Twilio echoes a mark once the audio before it has played: the mark sent after the last
    audio must have been echoed by then.
    """
    at = call.stream_time(request.at)
    timeline = [e for e in call.timeline if e.t <= at]
    last_media = max(i for i, e in enumerate(timeline) if e.kind == "media")
    after = next(e.detail for e in timeline[last_media:] if e.kind == "mark")
    return any(e.kind == "echo" and e.detail == after for e in timeline)


async def status_of(twilio, call_sid: str, *statuses: str) -> str:
    """The call's status at the Twilio stand-in, once it is one of `statuses`."""
    async with asyncio.timeout(15):
        while twilio.calls.get(call_sid) not in statuses:
            await asyncio.sleep(0.05)
    return twilio.calls[call_sid]


async def test_a_cold_transfer_is_heard_then_twilio_dials_the_manager_and_nobody_hangs_up(
    bot, standins, data
):
    call = await dial(bot.url)
    standins.twilio.voice.attach(call)
    await call.listen()
    await call.say(data / "manager.wav")
    handoff = await call.listen()
    await call.wait_closed()

    assert heard_matches(handoff.ulaw, HANDOFF)
    (update,) = [r for r in standins.twilio.requests if "Twiml" in r.form]
    assert call.call_sid in update.path and update.auth_ok
    assert heard_all_before(call, update), "the REST update came once the line was heard"
    assert call.events("closed")[0].detail == "Twilio stopped the stream: the call was redirected"
    (dialed,) = standins.twilio.voice.dialed
    assert (dialed.call_sid, dialed.to, dialed.caller_id) == (call.call_sid, MANAGER, CALLED)
    assert await status_of(standins.twilio, call.call_sid, "completed") == "completed"
    assert standins.twilio.hangups == [], "the bot never hung the caller up"
    tools = standins.openai.requests[-1].body["tools"]
    assert [t["function"]["name"] for t in tools] == ["end_call", "transfer_call"]
