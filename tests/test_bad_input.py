"""Malformed Twilio messages: a clear log line each, and nothing else breaks."""

import asyncio
import json

from test_call import BOOKING_REPLY

from calls import heard_matches
from standins.script import answer, dial

BAD_MESSAGES = {
    "not JSON": "this is not json",
    "unknown event": json.dumps({"event": "teleport", "streamSid": "MZx"}),
    "invalid base64": json.dumps({"event": "media", "media": {"payload": "@@@@"}}),
    "1 MB message": json.dumps({"event": "media", "media": {"payload": "A" * 1_000_000}}),
}


async def test_bad_messages_are_logged_and_the_call_and_others_go_on(bot, data, log_lines):
    bad, good = await asyncio.gather(dial(bot.url), dial(bot.url))
    await asyncio.gather(bad.listen(), good.listen())
    for message in BAD_MESSAGES.values():
        await bad.send_raw(message)
    await asyncio.sleep(0.2)
    for complaint in ("not JSON", "unknown event 'teleport'", "not valid base64", "-byte message"):
        assert any(complaint in line for line in log_lines), complaint

    # Both calls still work end to end.
    await asyncio.gather(bad.say(data / "book_table.wav"), good.say(data / "book_table.wav"))
    replies = await asyncio.gather(bad.listen(), good.listen())
    assert all(heard_matches(reply.ulaw, BOOKING_REPLY) for reply in replies)
    health = await _get(bot.url + "/health")
    assert health["calls"] == 2
    await asyncio.gather(bad.hang_up(), good.hang_up())


async def test_media_before_start_is_dropped_with_a_warning(bot, log_lines):
    import websockets

    stream = await answer(bot.url)
    async with websockets.connect(
        stream.stream_url,
        additional_headers={"X-Twilio-Signature": stream.stream_signature},
        proxy=None,
    ) as ws:
        await ws.send(json.dumps({"event": "media", "media": {"payload": "//8="}}))
        await ws.send(json.dumps({"event": "start", "start": {"streamSid": "MZ1"}}))
        closed = await asyncio.wait_for(ws.wait_closed(), 5) or ws.close_code
    assert any("lacks streamSid or callSid" in line for line in log_lines)
    assert any(
        "dropped 1 'media' message(s) that came before 'start'" in line for line in log_lines
    )
    assert closed is None or closed == 1008


async def _get(url: str) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return await response.json()
