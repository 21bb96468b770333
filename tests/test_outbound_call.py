"""Outbound calls end to end: placed through the API, answered by a person or a voicemail box."""

from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest

from calls import heard_matches, user_texts
from dialer.api import BotAPI
from pipelines.declaration import load_declarations
from server.local import serve_locally
from standins.audio import FRAME_MS
from standins.callee import Callee
from standins.script import BOOKING_REPLY

API_TOKEN = "test-api-token-0123456789"
FROM = "+15550100000"
ADA = "+15550123456"
GREETING = (
    "Hi Ada, this is Luigi's restaurant calling about your table booking. Do you have a moment?"
)
VOICEMAIL = (
    "Hi Ada, this is Luigi's restaurant calling about your table booking. "
    "Please call us back when you can. Goodbye."
)


@pytest.fixture
async def bot(standins, declarations):
    env = standins.env() | {"API_TOKEN": API_TOKEN, "TWILIO_PHONE_NUMBER": FROM}
    async with serve_locally(env, declarations) as running:
        yield running


@pytest.fixture
def api(bot) -> BotAPI:
    return BotAPI(bot.url, API_TOKEN, follow_every=0.2)


def created(standins) -> dict[str, str]:
    [request] = [r for r in standins.twilio.requests if r.path.endswith("/Calls.json")]
    return request.form


async def test_a_person_answers_hears_the_greeting_with_their_name_and_talks_with_the_bot(
    bot, standins, api, data
):
    call_sid = await api.place(ADA, variables={"name": "Ada"})
    callee = await standins.twilio.answered(call_sid)

    greeting = await callee.listen(timeout=10)
    assert heard_matches(greeting.ulaw, GREETING)
    await callee.say(data / "book_table.wav")
    reply = await callee.listen()
    assert heard_matches(reply.ulaw, BOOKING_REPLY)
    request = standins.openai.requests[-1].body
    assert request["messages"][1] == {"role": "assistant", "content": GREETING}
    assert user_texts(request) == ["Hi, I'd like to book a table for two tomorrow at seven."]
    await callee.say(data / "goodbye.wav")
    farewell = await callee.listen()
    assert heard_matches(farewell.ulaw, "Thanks for calling Luigi's. Goodbye!")
    await callee.wait_closed(timeout=10)  # the bot ended the stream: the call is over

    assert await standins.twilio.wait_ended(call_sid) == "completed"
    form = created(standins)
    assert (form["To"], form["From"]) == (ADA, FROM)
    assert form["MachineDetection"] == "DetectMessageEnd" and form["AsyncAmd"] == "true"
    assert form["AsyncAmdStatusCallback"] == f"{bot.url}/twilio/amd"
    assert form["StatusCallback"] == f"{bot.url}/twilio/status"
    url = urlsplit(form["Url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{bot.url}/voice"
    assert parse_qs(url.query) == {"pipeline": ["default"], "variables": ['{"name":"Ada"}']}
    reports = [(c.kind, c.form.get("AnsweredBy"), c.status) for c in standins.twilio.callbacks]
    assert ("amd", "human", 204) in reports
    assert [c.form["CallStatus"] for c in standins.twilio.callbacks if c.kind == "status"] == [
        "in-progress",
        "completed",
    ]
    assert [c.status for c in standins.twilio.callbacks] == [204] * 3
    assert (await api.ended(call_sid)).outcome == "answered"
    assert not [r for r in standins.twilio.requests if "Recordings" in r.path]  # record = false


async def test_a_voicemail_box_gets_the_voicemail_line_in_full_after_the_beep_then_a_hang_up(
    bot, standins, api
):
    standins.twilio.callees[ADA] = Callee(answers=("voicemail",))
    call_sid = await api.place(ADA, variables={"name": "Ada"})
    box = await standins.twilio.answered(call_sid)

    assert await standins.twilio.wait_ended(call_sid, timeout=30) == "completed"
    [beep_ended] = [event.t for event in box.events("sent_speech_end")]
    assert all(stretch.start >= beep_ended for stretch in box.heard)  # nothing over the greeting
    message = b"".join(bytes(stretch.ulaw) for stretch in box.heard)
    assert heard_matches(message, VOICEMAIL)
    [hung_up] = box.events("closed")  # the bot ended the stream, and so the call
    assert hung_up.detail == "server closed the stream"
    # Once the message had played (to within the 20 ms the phone plays a tick at a time).
    assert hung_up.t >= box.heard[-1].end - FRAME_MS / 1000
    assert standins.openai.requests == []  # the box's greeting was no turn for the LLM
    assert ("amd", "machine_end_beep", 204) in [
        (c.kind, c.form.get("AnsweredBy"), c.status) for c in standins.twilio.callbacks
    ]
    assert (await api.ended(call_sid)).outcome == "voicemail"


async def test_a_voicemail_box_gets_no_message_from_a_pipeline_without_one(standins, debug_lines):
    shipped = load_declarations()
    default = shipped["default"]
    silent = replace(default, bot=default.bot.model_copy(update={"voicemail": None}))
    env = standins.env() | {"API_TOKEN": API_TOKEN, "TWILIO_PHONE_NUMBER": FROM}
    standins.twilio.callees[ADA] = Callee(answers=("voicemail",))
    async with serve_locally(env, shipped | {"default": silent}) as bot:
        call_sid = await BotAPI(bot.url, API_TOKEN).place(ADA, variables={"name": "Ada"})
        box = await standins.twilio.answered(call_sid)
        assert await standins.twilio.wait_ended(call_sid, timeout=30) == "completed"

    assert box.heard == []  # not a word, and not the greeting meant for a person
    assert box.events("closed")[0].detail == "server closed the stream"
    assert "ending the call: answered by machine_end_beep, with no message to leave" in debug_lines
