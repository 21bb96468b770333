"""The Twilio REST stand-in, proven against the real `twilio` library and pipecat's serializer."""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from pipecat.frames.frames import EndFrame
from pipecat.serializers.twilio import TwilioFrameSerializer
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from standins.twilio_rest import TwilioRestStandIn

ACCOUNT = "AC" + "0" * 32
TOKEN = "test-auth-token"
CALL = "CA" + "1" * 32
TRANSFER = "<Response><Dial>+15551230000</Dial></Response>"


@asynccontextmanager
async def twilio_client(standin: TwilioRestStandIn, token: str = TOKEN) -> AsyncIterator[Client]:
    async with AsyncTwilioHttpClient() as http:
        # environment={} keeps TWILIO_EDGE/TWILIO_REGION from rewriting the host of base_url.
        client = Client(ACCOUNT, token, http_client=http, environment={})
        client.api.base_url = standin.http_url
        yield client


def standin(**knobs) -> TwilioRestStandIn:
    return TwilioRestStandIn(account_sid=ACCOUNT, auth_token=TOKEN, **knobs)


async def test_library_hangs_up_a_live_call_and_gets_the_call_resource():
    async with standin() as twilio, twilio_client(twilio) as client:
        twilio.register_call(CALL, "+15550001111", "+15550002222")
        call = await client.calls(CALL).update_async(status="completed")
        hung_up = await twilio.wait_for_hangup(CALL, timeout=1.0)

    assert (call.sid, call.status, call.account_sid) == (CALL, "completed", ACCOUNT)
    assert (call._from, call.to, call.direction) == ("+15550001111", "+15550002222", "inbound")
    assert call.api_version == "2010-04-01" and call.uri.endswith(f"/Calls/{CALL}.json")
    assert call.date_created is not None and call.end_time is not None
    assert hung_up and twilio.hangups == [CALL] and twilio.calls[CALL] == "completed"
    request = twilio.requests[0]
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL}.json"
    assert (request.method, request.form, request.auth_ok) == (
        "POST",
        {"Status": "completed"},
        True,
    )


async def test_hanging_up_an_ended_call_raises_20404():
    async with standin() as twilio, twilio_client(twilio) as client:
        await client.calls(CALL).update_async(status="completed")
        with pytest.raises(TwilioRestException) as caught:
            await client.calls(CALL).update_async(status="completed")

    assert (caught.value.status, caught.value.code) == (404, 20404)
    assert twilio.hangups == [CALL]


async def test_an_unknown_call_is_not_found_without_auto_register():
    async with standin(auto_register=False) as twilio, twilio_client(twilio) as client:
        with pytest.raises(TwilioRestException) as caught:
            await client.calls(CALL).update_async(status="completed")

    assert caught.value.code == 20404 and twilio.hangups == [] and twilio.calls == {}


async def test_redirecting_with_twiml_records_a_transfer_and_keeps_the_call_live():
    async with standin() as twilio, twilio_client(twilio) as client:
        call = await client.calls(CALL).update_async(twiml=TRANSFER)

    assert call.status == "in-progress"
    assert twilio.redirects[0].call_sid == CALL and twilio.redirects[0].twiml == TRANSFER
    assert twilio.hangups == []


async def test_creating_a_call_queues_it_under_a_new_call_sid():
    async with standin() as twilio, twilio_client(twilio) as client:
        call = await client.calls.create_async(
            to="+15550002222", from_="+15550001111", url="https://bot.example.com/voice"
        )

    assert re.fullmatch(r"CA[0-9a-f]{32}", call.sid)
    assert (call.status, call.direction, call.to) == ("queued", "outbound-api", "+15550002222")
    assert twilio.created == [call.sid] and twilio.calls[call.sid] == "queued"
    assert twilio.requests[0].form["Url"] == "https://bot.example.com/voice"
    assert twilio.requests[0].status == 201


async def test_wrong_credentials_are_refused_with_401_20003():
    async with standin() as twilio, twilio_client(twilio, token="wrong") as client:
        with pytest.raises(TwilioRestException) as caught:
            await client.calls(CALL).update_async(status="completed")

    assert (caught.value.status, caught.value.code) == (401, 20003)
    assert twilio.requests[0].auth_ok is False and twilio.hangups == []


async def test_fail_next_answers_500_then_recovers():
    async with standin(fail_next=1) as twilio, twilio_client(twilio) as client:
        with pytest.raises(TwilioRestException) as caught:
            await client.calls(CALL).update_async(status="completed")
        await client.calls(CALL).update_async(status="completed")

    assert caught.value.status == 500
    assert [r.status for r in twilio.requests] == [500, 200] and twilio.hangups == [CALL]


async def test_waiting_for_a_hangup_that_never_comes_returns_false():
    async with standin() as twilio:
        assert await twilio.wait_for_hangup(CALL, timeout=0.05) is False


async def test_pipecat_serializer_hangs_up_through_the_stand_in_on_end_frame():
    async with standin() as twilio:
        serializer = TwilioFrameSerializer(
            "MZ" + "2" * 32, CALL, ACCOUNT, TOKEN, base_url=twilio.http_url
        )
        await serializer.serialize(EndFrame())
        hung_up = await twilio.wait_for_hangup(CALL, timeout=1.0)

    assert hung_up and twilio.requests[0].form == {"Status": "completed"}
