"""SIGTERM to `python bot.py serve` with calls up: drain, goodbyes, then exit 0."""

import asyncio
import signal
import tempfile
import xml.etree.ElementTree as ET

import pytest

from harness.faults.shutdown import DRAIN_TIMEOUT_SECS, sigterm_during_calls, start_server
from pipelines.declaration import ENGLISH_LINES
from standins.script import dial

BUSY_LINE = ENGLISH_LINES["busy"]


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_drains_the_calls_says_goodbye_to_the_rest_and_exits_0(workers):
    run = await sigterm_during_calls(workers)
    print(run.outcome.figures)

    assert run.outcome.survived, (run.outcome.problems, run.log[-3000:])
    # At once: /health says draining (with workers, once uvicorn's supervisor forwards SIGTERM:
    # its loop wakes every 0.5 s and health-checks each worker first).
    seconds, status, body = run.health_after_term[-1]
    assert status == 503 and body["status"] == "draining" and body["server_calls"] == 2
    assert seconds < (1.0 if workers == 1 else 10.0)
    root = ET.fromstring(run.voice_during_drain)
    assert [child.tag for child in root] == ["Say", "Hangup"] and root[0].text == ENGLISH_LINES[
        "busy"
    ]
    # The caller who said goodbye: the whole farewell, then the REST hang-up.
    assert run.farewell_heard
    assert run.hangups[run.leaving_sid] >= run.last_echo[run.leaving_sid]
    # The silent caller: the whole shutdown goodbye after the drain timeout, then the hang-up.
    assert run.goodbye_heard
    assert run.goodbye_started >= DRAIN_TIMEOUT_SECS
    assert run.hangups[run.silent_sid] >= run.last_echo[run.silent_sid]
    # Then, only then, the process exits 0.
    assert run.exit_code == 0
    assert run.exited_after >= max(run.hangups.values())
    for line in (
        "SIGTERM received: draining calls, then exiting",
        "drain timeout: saying goodbye to the",
        "draining: saying the shutdown goodbye",
        "drained: 0 call(s) in progress",
        "refused a call, POST /voice answered busy: the server is shutting down",
        "server stopped",
    ):
        assert line in run.log, line


async def test_sigint_during_the_drain_exits_at_once(standins, tmp_path):
    with tempfile.TemporaryFile("w+") as log:
        server, url = await start_server(standins, 1, tmp_path, log)
        try:
            call = await dial(url)
            await call.listen()
            server.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            server.send_signal(signal.SIGINT)
            # Well before the drain timeout would have ended the call.
            await asyncio.wait_for(server.wait(), DRAIN_TIMEOUT_SECS - 1)
            await call.wait_closed(timeout=5)
        finally:
            if server.returncode is None:
                server.kill()
                await server.wait()
        log.seek(0)
        assert "SIGINT during the drain: exiting now" in log.read()
