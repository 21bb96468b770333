"""Size limits over real HTTP and WebSockets: 413 for a huge webhook, 1009 for a huge message."""

import asyncio
import contextlib
import json

import aiohttp
import websockets
from test_call import BOOKING_REPLY

from calls import heard_matches
from server.size_limits import MAX_BODY_BYTES, MAX_WEBSOCKET_MESSAGE_BYTES
from standins.script import answer, dial
from standins.stack import ACCOUNT_SID
from telephony.media_streams import MAX_MESSAGE_BYTES


async def post(url: str, data, headers: dict | None = None) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=data, headers=headers) as r,
    ):
        return r.status, await r.text()


async def test_a_webhook_body_over_the_limit_gets_413_before_the_form_is_parsed(bot, log_lines):
    body = b"From=%2B1555&Junk=" + b"x" * MAX_BODY_BYTES
    status, text = await post(
        f"{bot.url}/voice", body, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 413 and "over 65536 bytes" in text
    assert any(
        "refused POST /voice: body Content-Length" in line and "(413)" in line for line in log_lines
    )
    assert not any("X-Twilio-Signature" in line for line in log_lines), "the app never ran"


async def test_a_streamed_body_without_content_length_is_counted_and_refused(bot, log_lines):
    async def chunks():
        for _ in range(20):
            yield b"x" * 8192  # 160 KiB in all, chunked

    status, _ = await post(f"{bot.url}/voice", chunks())
    assert status == 413
    assert any("streamed bytes" in line and "(413)" in line for line in log_lines)


async def test_a_body_under_the_limit_reaches_the_app(bot, log_lines):
    body = b"Junk=" + b"x" * (MAX_BODY_BYTES - 100)
    status, _ = await post(
        f"{bot.url}/voice", body, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 403  # unsigned: refused by the app itself, after parsing
    assert any("X-Twilio-Signature" in line for line in log_lines)


def test_the_serializer_drops_messages_well_below_the_protocol_cap():
    # Between the two a message is dropped with a log line and its call goes on
    # (tests/test_bad_input.py sends 1 MB); above the cap its socket is closed.
    assert MAX_MESSAGE_BYTES < 1_000_100 < MAX_WEBSOCKET_MESSAGE_BYTES


async def test_a_message_over_the_protocol_cap_closes_that_socket_only(bot, data, log_lines):
    good = await dial(bot.url)
    await good.listen()
    stream = await answer(bot.url)
    ws = await websockets.connect(
        stream.stream_url,
        additional_headers={"X-Twilio-Signature": stream.stream_signature},
        proxy=None,
    )
    await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    start = {"accountSid": ACCOUNT_SID, "streamSid": "MZ" + "1" * 32, "callSid": stream.call_sid}
    await ws.send(json.dumps({"event": "start", "streamSid": start["streamSid"], "start": start}))
    await asyncio.sleep(0.5)
    payload = "A" * MAX_WEBSOCKET_MESSAGE_BYTES
    # The server refuses at the frame header, sends 1009 and closes; the client may still be
    # pushing the rest of the message into a socket that is gone.
    with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
        await asyncio.wait_for(ws.send(json.dumps({"event": "media", "payload": payload})), 10)
    async with asyncio.timeout(10):
        while list(bot.app.state.calls) != [good.call_sid]:
            await asyncio.sleep(0.05)  # that call's pipeline has ended; the other runs on
    assert any("a message over the 2097152-byte limit (1009)" in line for line in log_lines)
    ws.transport.abort()

    await good.say(data / "book_table.wav")
    reply = await good.listen()
    assert heard_matches(reply.ulaw, BOOKING_REPLY), "the other call goes on"
    await good.hang_up()
