"""Transfers to a person, cold and warm, through whole calls against the stand-ins."""

import asyncio
from dataclasses import replace

import pytest

from calls import heard_matches
from harness.faults.transfer import with_manager
from standins.script import dial

HANDOFF = "Of course. I'm putting you through to the manager now."
MANAGER = "+15555550100"
CALLED = "+15557650000"  # the number the simulated caller dials
DIALED = "/transfer/dialed"


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
    assert await status_of(standins.twilio, call.call_sid, "completed") == "completed"
    (dialed,) = standins.twilio.voice.dialed
    assert (dialed.to, dialed.caller_id, dialed.status) == (MANAGER, CALLED, "completed")
    (action,) = [form for url, form in standins.twilio.voice.callbacks if DIALED in url]
    assert action["DialCallStatus"] == "completed", "Twilio told the bot how the dial went"
    assert standins.twilio.hangups == [], "the bot never hung the caller up"
    tools = standins.openai.requests[-1].body["tools"]
    assert [t["function"]["name"] for t in tools] == ["end_call", "transfer_call"]


HOLD_MUSIC = "https://music.example.com/hold.mp3"  # never fetched: Twilio's stand-in notes it
SUMMARY = "The caller said: I'd like to speak to the manager, please."


WARM = {"mode": "warm", "hold_music": HOLD_MUSIC}


@pytest.fixture
def declarations(request) -> dict:
    """The shipped pipelines; with a parameter, the default one's manager (and keys) changed."""
    changes = dict(getattr(request, "param", {}))
    shortcuts = changes.pop("shortcuts", None)
    shipped = with_manager(**changes)
    if shortcuts:
        default = shipped["default"]
        keypad = default.keypad.model_copy(update={"shortcuts": shortcuts})
        shipped["default"] = replace(default, keypad=keypad)
    return shipped


async def joined(voice, room: str, count: int):
    """Conference `room` at the Twilio stand-in, once `count` calls have joined it."""
    async with asyncio.timeout(15):
        while room not in voice.conferences or len(voice.conferences[room].joined) < count:
            await asyncio.sleep(0.05)
    return voice.conferences[room]


@pytest.mark.parametrize("declarations", [WARM], indirect=True)
async def test_a_warm_transfer_holds_the_caller_while_the_manager_hears_a_summary_then_joins(
    bot, standins, data
):
    twilio = standins.twilio
    call = await dial(bot.url)
    twilio.voice.attach(call)
    await call.listen()
    await call.say(data / "manager.wav")
    handoff = await call.listen()
    await call.wait_closed()

    assert heard_matches(handoff.ulaw, HANDOFF)
    (create,) = [r for r in twilio.requests if r.path.endswith("/Calls.json")]
    (hold,) = [r for r in twilio.requests if "Twiml" in r.form and call.call_sid in r.path]
    assert heard_all_before(call, create), "the manager was dialled once the line was heard"
    assert (create.form["To"], create.form["From"], create.form["Timeout"]) == (
        MANAGER,
        CALLED,
        "20",
    )
    assert create.form["StatusCallback"].startswith(f"{bot.url}/transfer/status?")
    (manager,) = twilio.created
    room = await joined(twilio.voice, f"transfer-{call.call_sid}", 2)
    assert set(room.joined) == {call.call_sid, manager}, "both joined the room"
    assert room.hold_music == {call.call_sid: HOLD_MUSIC}
    assert twilio.voice.said[manager] == [SUMMARY], "what the manager heard before joining"
    assert "<Say" not in hold.form["Twiml"], "the caller hears no summary"
    summary_request = [r.body for r in standins.openai.requests if r.body.get("stream") is False]
    assert (
        summary_request and "Summarize this call" in summary_request[0]["messages"][-1]["content"]
    )
    assert twilio.hangups == [], "the bot never hung the caller up"


@pytest.mark.parametrize("declarations", [{"shortcuts": {"0": "transfer"}}], indirect=True)
async def test_the_transfer_key_hands_the_caller_to_the_manager_without_the_llm(bot, standins):
    call = await dial(bot.url)
    standins.twilio.voice.attach(call)
    await call.listen()
    await call.press("0")
    handoff = await call.listen()
    await call.wait_closed()

    assert heard_matches(handoff.ulaw, HANDOFF)
    assert standins.openai.requests == [], "a shortcut asks no LLM"
    (update,) = [r for r in standins.twilio.requests if "Twiml" in r.form]
    assert heard_all_before(call, update), "the REST update came once the line was heard"
    assert await status_of(standins.twilio, call.call_sid, "completed") == "completed"
    (dialed,) = standins.twilio.voice.dialed
    assert dialed.to == MANAGER
    assert standins.twilio.hangups == [], "the bot never hung the caller up"
