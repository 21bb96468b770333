"""X-Twilio-Signature on the webhook and the WebSocket upgrade: wrong, missing, replayed → 403."""

import asyncio
import json

import aiohttp
import pytest
import websockets
from twilio.request_validator import RequestValidator

from standins.caller import Answer, DialError
from standins.script import answer, dial
from standins.stack import ACCOUNT_SID, AUTH_TOKEN

FORM = {"CallSid": "CA" + "1" * 32, "From": "+15551230000", "To": "+15557650000"}


async def post_voice(bot, headers: dict) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.post(bot.url + "/voice", data=FORM, headers=headers) as response:
            return response.status


async def test_a_correctly_signed_webhook_gets_twiml(bot):
    signature = RequestValidator(AUTH_TOKEN).compute_signature(bot.url + "/voice", FORM)
    assert await post_voice(bot, {"X-Twilio-Signature": signature}) == 200


@pytest.mark.parametrize("headers", [{}, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}])
async def test_an_unsigned_or_wrongly_signed_webhook_is_forbidden(bot, headers):
    assert await post_voice(bot, headers) == 403


async def test_a_webhook_signed_with_another_token_cannot_dial(bot):
    forged = RequestValidator("not-our-token").compute_signature(bot.url + "/voice", FORM)
    with pytest.raises(DialError, match="HTTP 403"):
        await dial(bot.url, signature=forged)


@pytest.mark.parametrize("signature", [None, "bm90IGEgc2lnbmF0dXJl", "sign-with-other-token"])
async def test_an_unsigned_or_wrongly_signed_websocket_upgrade_is_forbidden(
    bot, standins, signature
):
    url = (await answer(bot.url)).stream_url  # a real stream URL, with its call's token
    if signature == "sign-with-other-token":
        signature = RequestValidator("other").compute_signature(url, {})
    headers = {"X-Twilio-Signature": signature} if signature else {}
    assert await upgrade_status(url, headers) == 403
    assert not standins.stt.connections and not standins.openai.requests  # nothing ran


async def test_a_replayed_upgrade_is_forbidden_while_the_call_runs_and_after(
    bot, standins, log_lines
):
    call = await dial(bot.url)
    await call.listen()
    # What an eavesdropper saw of the upgrade: its URL and signature, replayed as they were.
    url = call.stream_url
    headers = {"X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(url, {})}
    assert await upgrade_status(url, headers) == 403
    await call.hang_up()
    assert await upgrade_status(url, headers) == 403
    assert sum("already used" in line and "a replay" in line for line in log_lines) == 2
    assert len(standins.stt.connections) == 1  # one call, one pipeline


async def test_a_replayed_webhook_cannot_open_a_second_stream_for_its_call(bot, log_lines):
    first = await answer(bot.url)
    async with websockets.connect(
        first.stream_url, additional_headers=signed(first), proxy=None
    ) as ws:
        await ws.send(json.dumps(start_message(first.call_sid)))
        await asyncio.sleep(0.3)
        # The same webhook again (same CallSid, validly signed): TwiML, but no second stream.
        second = await answer(bot.url, call_sid=first.call_sid)
        assert await upgrade_status(second.stream_url, signed(second)) == 403
    assert any(f"already used (call {first.call_sid})" in line for line in log_lines)


async def test_a_stream_must_start_as_the_call_its_url_was_issued_for(bot, log_lines):
    issued = await answer(bot.url)
    async with websockets.connect(
        issued.stream_url, additional_headers=signed(issued), proxy=None
    ) as ws:
        await ws.send(json.dumps(start_message("CA" + "f" * 32)))
        await asyncio.wait_for(ws.wait_closed(), 5)
    assert ws.close_code == 1008
    assert any(f"the stream is {issued.call_sid}'s" in line for line in log_lines)
    assert list(bot.app.state.calls) == []


def signed(stream: Answer) -> dict[str, str]:
    return {"X-Twilio-Signature": stream.stream_signature}


def start_message(call_sid: str) -> dict:
    start = {"accountSid": ACCOUNT_SID, "streamSid": "MZ" + "e" * 32, "callSid": call_sid}
    return {"event": "start", "streamSid": start["streamSid"], "start": start}


async def upgrade_status(url: str, headers: dict[str, str]) -> int:
    """The HTTP status a WebSocket upgrade of `url` gets (101: accepted, then closed)."""
    try:
        async with websockets.connect(url, additional_headers=headers, proxy=None):
            return 101
    except websockets.InvalidStatus as e:
        return e.response.status_code
