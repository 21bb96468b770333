"""A pipeline with `[call] record = true`: Twilio records the call, the log names the recording."""

from dataclasses import replace

import pytest

from calls import heard_matches
from pipelines.declaration import load_declarations
from standins.script import GREETING, dial


@pytest.fixture
def declarations() -> dict:
    shipped = load_declarations()
    default = shipped["default"]
    return shipped | {
        "default": replace(default, call=default.call.model_copy(update={"record": True}))
    }


async def test_a_recorded_call_is_recorded_by_twilio_in_two_channels_and_logged(
    bot, standins, data, debug_lines
):
    call = await dial(bot.url)
    assert heard_matches((await call.listen()).ulaw, GREETING)
    await call.say(data / "goodbye.wav")
    await call.listen()
    await call.wait_closed(timeout=10)
    await standins.twilio.wait_ended(call.call_sid)

    [start] = [r for r in standins.twilio.requests if r.path.endswith("/Recordings.json")]
    assert start.path.endswith(f"/Calls/{call.call_sid}/Recordings.json") and start.status == 201
    assert start.form["RecordingChannels"] == "dual"  # the caller's and the bot's side
    assert start.form["RecordingStatusCallback"] == f"{bot.url}/twilio/recording"
    [(sid, recording)] = standins.twilio.recordings.items()
    assert recording["status"] == "completed"
    [done] = [c for c in standins.twilio.callbacks if c.kind == "recording"]
    assert done.status == 204  # signed, so the server took it
    assert (done.form["RecordingSid"], done.form["RecordingStatus"]) == (sid, "completed")
    url = done.form["RecordingUrl"]
    assert (
        url == f"{standins.twilio.http_url}/2010-04-01/Accounts/{call.account_sid}/Recordings/{sid}"
    )
    assert f"call ended (recording {sid}: {url})" in debug_lines
    assert any(
        line.startswith(f"recording {sid} completed") and url in line for line in debug_lines
    )
