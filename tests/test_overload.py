"""Over MAX_CALLS: extra callers hear the line is busy; the admitted calls go on as normal."""

import asyncio
import xml.etree.ElementTree as ET

import pytest

from harness.faults.overload import MAX_CALLS, over_max_calls
from pipelines.declaration import ENGLISH_LINES, load_declarations
from server.local import serve_locally
from server.settings import Settings
from standins.caller import DialError, signed_webhook
from standins.script import dial

BUSY_LINE = ENGLISH_LINES["busy"]


async def test_extra_calls_get_busy_twiml_and_refused_upgrades_while_admitted_ones_talk(
    log_lines,
):
    run = await over_max_calls()

    assert run.outcome.survived, run.outcome.problems
    assert all(turn.heard_reply for turn in run.calm + run.hammered)
    extra = run.attempts
    assert extra.voice and extra.busy == len(extra.voice), extra.voice[:3]
    assert set(extra.voice_statuses) == {200}
    assert extra.media and set(extra.media) == {503}, extra.media[:5]
    assert run.health["server_calls"] == MAX_CALLS and run.health["max_calls"] == MAX_CALLS
    assert run.health["calls"] == MAX_CALLS and run.health["status"] == "ok"
    assert run.stt_connections == MAX_CALLS, "no pipeline started for an extra call"
    refusals = [line for line in log_lines if line.startswith("refused a call")]
    assert refusals, "refusals are logged"
    assert all(f"{MAX_CALLS} calls in progress (MAX_CALLS {MAX_CALLS})" in r for r in refusals)
    # A flood logs about a line a second, not one per attempt.
    assert len(refusals) < (len(extra.voice) + len(extra.media)) / 4
    assert not [line for line in log_lines if "without completing handshake" in line]
    print(run.outcome.figures)


async def test_an_ended_call_frees_its_place(standins):
    env = standins.env() | {"MAX_CALLS": "1"}
    async with serve_locally(env, load_declarations()) as bot:
        first = await dial(bot.url)
        await first.listen()
        with pytest.raises(DialError, match="TwiML has no <Connect><Stream"):
            await dial(bot.url)
        await first.hang_up()
        while bot.app.state.calls:
            await asyncio.sleep(0.05)
        second = await dial(bot.url)
        await second.listen()
        await second.hang_up()


async def test_the_busy_twiml_says_the_line_is_busy_then_hangs_up(standins):
    from standins.stack import AUTH_TOKEN

    env = standins.env() | {"MAX_CALLS": "1"}
    async with serve_locally(env, load_declarations()) as bot:
        call = await dial(bot.url)
        form = {"CallSid": "CA" + "0" * 32, "From": "+1555", "To": "+1666"}
        twiml = await signed_webhook(f"{bot.url}/voice", form, auth_token=AUTH_TOKEN)
        root = ET.fromstring(twiml)
        assert [child.tag for child in root] == ["Say", "Hangup"]
        assert root[0].text == BUSY_LINE and root[0].get("language") == "en"
        await call.hang_up()


def test_max_calls_defaults_to_four_per_worker_process_and_0_means_no_limit():
    required = {"public_url": "https://bot.example.com", "twilio_auth_token": "token"}
    required["twilio_account_sid"] = "AC" + "0" * 32
    assert Settings(_env_file=None, **required, workers=3).call_limit == 18
    assert Settings(_env_file=None, **required, workers=3, max_calls=5).call_limit == 5
    assert Settings(_env_file=None, **required, max_calls=0).call_limit is None
    assert Settings(_env_file=None, **required).drain_timeout_secs == 30
