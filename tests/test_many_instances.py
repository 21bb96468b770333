"""Two server instances on one PostgreSQL database behave as one server, outage included.

Each instance is the real server (`serve_locally`, its own uvicorn on its own port), as two
machines behind one load balancer would run it: a call's webhook may reach one and its stream
the other. Real PostgreSQL, never a mock: without it these tests fail.
"""

import asyncio
import xml.etree.ElementTree as ET
from dataclasses import replace

import httpx
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

import server.leases
from calls import heard_matches
from harness.postgres import ThrowawayPostgres
from pipelines.declaration import ENGLISH_LINES
from recordings import RECORDINGS
from server.local import LocalBot, serve_locally
from server.twilio_urls import AMD_PATH
from standins.caller import Answer, SimulatedCall, post_signed
from standins.script import BOOKING_REPLY, answer, dial
from standins.stack import ACCOUNT_SID, AUTH_TOKEN

OTHER_CALL = {"AccountSid": ACCOUNT_SID, "CallSid": "CA" + "e" * 32, "From": "+1", "To": "+2"}


def at(bot: LocalBot, answered: Answer) -> Answer:
    """The stream `answered` names, opened at `bot` instead (as a load balancer may route it)."""
    url = f"{bot.url.replace('http', 'ws', 1)}/media/{answered.stream_url.rsplit('/', 1)[1]}"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, {})
    return replace(answered, stream_url=url, stream_signature=signature)


async def join(answered: Answer) -> SimulatedCall:
    return await SimulatedCall.join(answered, account_sid=ACCOUNT_SID)


async def upgrade(answered: Answer) -> tuple[int, str]:
    """The HTTP status (and body) a signed upgrade to the stream gets; 101 if accepted."""
    headers = {"X-Twilio-Signature": answered.stream_signature}
    try:
        async with connect(answered.stream_url, additional_headers=headers, proxy=None):
            return 101, ""
    except InvalidStatus as e:
        return e.response.status_code, e.response.body.decode()


def unissued(bot: LocalBot) -> Answer:
    """A signed upgrade with a token never issued: a full or refusing server says 503 first."""
    url = f"{bot.url.replace('http', 'ws', 1)}/media/not-a-stream-token"
    return Answer("", url, RequestValidator(AUTH_TOKEN).compute_signature(url, {}), {})


async def webhook(bot: LocalBot) -> str:
    """The TwiML `bot` answers another incoming call with."""
    status, twiml = await post_signed(f"{bot.url}/voice", OTHER_CALL, auth_token=AUTH_TOKEN)
    assert status == 200
    return twiml


def is_busy(twiml: str) -> bool:
    root = ET.fromstring(twiml)
    return [child.tag for child in root] == ["Say", "Hangup"] and (
        root[0].text == ENGLISH_LINES["busy"]
    )


async def health(bot: LocalBot) -> dict:
    async with httpx.AsyncClient(base_url=bot.url) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    return response.json()


async def ended(*bots: LocalBot) -> None:
    async with asyncio.timeout(10):
        while any(bot.app.state.calls for bot in bots):
            await asyncio.sleep(0.05)


async def test_a_webhook_on_one_instance_and_its_stream_on_the_other_under_one_max_calls(
    standins, declarations, postgres
):
    env = standins.env() | {"DATABASE_URL": postgres.new_database(), "MAX_CALLS": "2"}
    async with serve_locally(env, declarations) as a, serve_locally(env, declarations) as b:
        first_answer = await answer(a.url)  # the webhook reaches A, the stream B
        first = await join(at(b, first_answer))
        await first.listen()
        assert list(b.app.state.calls) == [first.call_sid] and not a.app.state.calls
        for bot in (a, b):  # the same upgrade replayed: every instance refuses it
            status, _ = await upgrade(at(bot, first_answer))
            assert status == 403
        second = await join(at(a, await answer(b.url)))
        await second.listen()
        for bot in (a, b):  # two calls, one on each: both instances are full
            assert is_busy(await webhook(bot))
            status, reason = await upgrade(unissued(bot))
            assert (status, reason) == (503, "2 calls in progress (MAX_CALLS 2)")
            assert (await health(bot))["server_calls"] == 2
            assert (await health(bot))["calls"] == 1
        await first.hang_up()
        await ended(b)
        third = await dial(b.url)
        await third.listen()
        # Twilio's machine-detection verdict reaches A; the call waiting for it may be on B.
        verdict = OTHER_CALL | {"AnsweredBy": "machine_end_beep"}
        status, _ = await post_signed(f"{a.url}{AMD_PATH}", verdict, auth_token=AUTH_TOKEN)
        assert status == 204
        answers = b.app.state.shared.answers
        assert await answers.wait(OTHER_CALL["CallSid"], timeout=5) == "machine_end_beep"
        await asyncio.gather(second.hang_up(), third.hang_up())
        await ended(a, b)


async def test_postgresql_down_refuses_new_calls_naming_it_while_calls_go_on_then_counts_them(
    standins, declarations, monkeypatch, log_lines
):
    monkeypatch.setattr(server.leases, "LEASE_SECS", 1.0)
    monkeypatch.setattr(server.leases, "RENEW_SECS", 0.25)
    monkeypatch.setattr(server.leases, "SETTLE_SECS", 1.5)
    database = ThrowawayPostgres().start()
    try:
        env = standins.env() | {"DATABASE_URL": database.new_database(), "MAX_CALLS": "2"}
        async with serve_locally(env, declarations) as a, serve_locally(env, declarations) as b:
            call = await dial(a.url)
            await call.listen()
            database.stop()
            for bot in (a, b):
                assert is_busy(await webhook(bot))
                status, reason = await upgrade(unissued(bot))
                assert status == 503 and reason.startswith("the call database (PostgreSQL")
                assert reason.endswith("is unreachable: no new calls until it is back")
                assert (await health(bot))["refusing"] == reason
            await call.say(RECORDINGS / "book_table.wav")  # the call goes on: a whole turn
            reply = await call.listen(timeout=15)
            assert heard_matches(reply.ulaw, BOOKING_REPLY)
            database.start()  # down for longer than a lease: the call's lease has lapsed
            await asyncio.sleep(2.5)  # past the settle time: only renewed leases count
            for bot in (a, b):
                assert (await health(bot))["server_calls"] == 1
            other = await dial(b.url)
            await other.listen()
            await asyncio.gather(call.hang_up(), other.hang_up())
            await ended(a, b)
    finally:
        database.remove()
    refused = [line for line in log_lines if line.startswith("refused a call")]
    assert refused and all("call database (PostgreSQL" in line for line in refused)
