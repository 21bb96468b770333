"""The post-call webhook: the finished record, signed, retried; a receiver down affects no call."""

import asyncio
import hashlib
import hmac
import json

import httpx

from harness.faults import heard_sentences, spoken_texts
from recordings import recording
from records.webhook import SIGNATURE_HEADER, WebhookSender
from server.local import free_port, serve_locally
from standins.script import BOOKING_REPLY, GREETING, dial
from standins.webhook_receiver import WebhookReceiver

TOKEN = "webhook-test-token-0123456789"
SECRET = "webhook-test-secret"


def signed(body: bytes, header: str) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


async def delivered(receiver: WebhookReceiver, count: int = 1) -> None:
    for _ in range(300):
        if len([d for d in receiver.deliveries if d.status == 204]) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no delivery: {receiver.deliveries}")


async def refused(call_sid: str, log_lines: list[str]) -> None:
    for _ in range(100):
        if any(call_sid in m and "retrying" in m for m in log_lines):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no failed attempt logged: {log_lines}")


async def test_a_receiver_down_during_the_call_gets_the_record_when_it_is_back(
    standins, declarations, log_lines
):
    port = free_port()
    receiver = WebhookReceiver(port=port)
    env = standins.env() | {
        "API_TOKEN": TOKEN,
        "CALL_WEBHOOK_URL": f"http://127.0.0.1:{port}{WebhookReceiver.path}",
        "CALL_WEBHOOK_SECRET": SECRET,
    }
    async with serve_locally(env, declarations) as bot:
        call = await dial(bot.url)
        await call.listen()
        await call.say(recording("book_table.wav"))
        await call.listen(timeout=10)
        await call.hang_up()
        heard = heard_sentences(call, spoken_texts(standins))
        await refused(call.call_sid, log_lines)  # the first attempt found nobody listening
        async with receiver:  # back up after the call: the next attempt gets through
            await delivered(receiver)
            async with httpx.AsyncClient(base_url=bot.url) as client:
                auth = {"Authorization": f"Bearer {TOKEN}"}
                api = (await client.get(f"/calls/{call.call_sid}", headers=auth)).json()

    assert " ".join(heard) == f"{GREETING} {BOOKING_REPLY}"  # the call went on as ever
    (delivery,) = receiver.deliveries
    assert signed(delivery.body, delivery.headers[SIGNATURE_HEADER])
    assert delivery.headers["Content-Type"] == "application/json"
    record = json.loads(delivery.body)
    assert record == api
    assert [t["speaker"] for t in record["turns"]] == ["bot", "caller", "bot"]


async def test_a_failing_receiver_is_retried_with_backoff_then_given_up(log_lines):
    async with WebhookReceiver(fail_next=2) as receiver:
        sender = WebhookSender(SECRET, delays=(0.01, 0.02, 0.04))
        sender.send(receiver.url, {"call_sid": "CA1", "turns": []})
        await delivered(receiver)
        assert [d.status for d in receiver.deliveries] == [500, 500, 204]
        receiver.fail_next = 10
        sender.send(receiver.url, {"call_sid": "CA2", "turns": []})
        await sender.close()
    assert [d.status for d in receiver.deliveries[3:]] == [500] * 4  # 1 + 3 retries
    assert (sender.delivered, sender.failed) == (1, 1)
    assert any("CA2" in m and "gave up after 4 attempts (HTTP 500)" in m for m in log_lines)
