"""X-Twilio-Signature on the webhook and on the WebSocket upgrade: wrong or missing → 403."""

import aiohttp
import pytest
import websockets
from twilio.request_validator import RequestValidator

from calls import dial
from standins.caller import DialError
from standins.stack import AUTH_TOKEN

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
    url = bot.url.replace("http://", "ws://") + "/media"
    if signature == "sign-with-other-token":
        signature = RequestValidator("other").compute_signature(url, {})
    headers = {"X-Twilio-Signature": signature} if signature else {}
    with pytest.raises(websockets.InvalidStatus) as e:
        await websockets.connect(url, additional_headers=headers, proxy=None)
    assert e.value.response.status_code == 403
    assert not standins.stt.connections and not standins.openai.requests  # nothing ran
