"""The console's record pages in headless Chromium, against call records shaped as the contract.

The records API (`GET /calls`, `GET /calls/{call_sid}`) is built on another branch: here a
tiny server of the test answers with contract-shaped JSON on the console's own origin (the
real console routes, the records canned), and records what the pages asked for.
"""

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from browser import CHROMEDRIVER, CHROMIUM, MISSING, Browser, logged_in
from server.console_auth import ConsoleAuth
from server.console_routes import console_routes
from server.local import free_socket, serving
from server.stream_tokens import StreamTokens
from telephony.mulaw import pcm_to_ulaw, ulaw_to_pcm

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason=MISSING)

TOKEN = "console-pages-token-0123456789"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
INTERRUPTED = "Of course. A table for two tomorrow at seven. May I have a name for the booking?"
HEARD = "Of course. A table for two"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _bot(at_ms: int, latency_ms: int, text: str, heard: str | None = None) -> dict:
    stages = {"turn_end_ms": 300, "stt_ms": 60, "llm_ms": latency_ms - 520, "tts_ms": 90}
    stages["playout_ms"] = 70
    return {
        "speaker": "bot",
        "text": text,
        "heard": text if heard is None else heard,
        "interrupted": heard is not None,
        "at_ms": at_ms,
        "latency_ms": latency_ms,
        "stages": stages,
    }


def _caller(at_ms: int, text: str = "", dtmf: str | None = None) -> dict:
    return {"speaker": "caller", "text": text, "dtmf": dtmf, "at_ms": at_ms}


def _call(index: int, turns: list[dict], *, ended: bool = True) -> dict:
    started = START + timedelta(hours=index)
    return {
        "call_sid": f"CA{index:032x}",
        "direction": "inbound" if index % 2 else "outbound",
        "from": f"+1555010{index:04d}",
        "to": "+15550009999",
        "pipeline": "default",
        "started_at": _iso(started),
        "ended_at": _iso(started + timedelta(minutes=2)) if ended else None,
        "end_reason": "caller hung up" if ended else None,
        "turns": turns,
        "usage": {"llm_tokens": 420 + index, "tts_characters": 180, "stt_audio_secs": 31.5},
    }


def _records() -> list[dict]:
    """Twelve calls an hour apart, newest first; the newest is in progress, call 5 has it all."""
    calls = []
    for index in range(12):
        turns = [_bot(0, 600 + 10 * index, "Thanks for calling Luigi's.")]
        turns += [_caller(2000, "What time do you open?"), _bot(4000, 700 + 25 * index, "At nine.")]
        calls.append(_call(index, turns, ended=index < 11))
    calls[5]["turns"] = [
        _bot(0, 640, "Thanks for calling Luigi's. How can I help you today?"),
        _caller(3100, "Hi, I'd like to book a table for two tomorrow at seven."),
        _bot(4300, 820, INTERRUPTED, heard=HEARD),
        _caller(6200, "Actually, make it three."),
        _bot(7900, 910, "Sure, three it is. Let me check.")
        | {
            "tool_calls": [
                {
                    "name": "check_availability",
                    "arguments": {"party_size": 3},
                    "result": {"available": True},
                }
            ]
        },
        _caller(11000, "", dtmf="4217#"),
        _bot(12600, 760, "Thank you. I have noted the number you entered."),
    ]
    calls[5]["recording_url"] = "/recordings/call-5.wav"
    return calls[::-1]


@pytest.fixture
async def console():
    """The console's routes and a canned records API on one origin; `.asked`: the queries."""
    records = _records()
    sock = free_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    auth = ConsoleAuth(TOKEN, url)
    app = FastAPI()
    tokens = StreamTokens("unused", claim=lambda *_: True)
    app.include_router(console_routes(auth, tokens, lambda: ["default"]))
    app.state.asked = []

    @app.get("/calls")
    async def calls(request: Request) -> JSONResponse:
        if not auth.bearer_ok(request):
            return JSONResponse({"error": "401"}, status_code=401)
        query = dict(request.query_params)
        app.state.asked.append(query)
        chosen = [c for c in records if c["pipeline"] == query.get("pipeline", c["pipeline"])]
        start = int(query.get("offset", 0))
        listed = [{k: v for k, v in c.items() if k != "turns"} for c in chosen]
        return JSONResponse({"calls": listed[start : start + int(query.get("limit", 50))]})

    @app.get("/calls/{call_sid}")
    async def call(call_sid: str, request: Request) -> JSONResponse:
        if not auth.bearer_ok(request):
            return JSONResponse({"error": "401"}, status_code=401)
        return JSONResponse(next(c for c in records if c["call_sid"] == call_sid))

    async with serving(app, sock):
        app.state.url, app.state.records = url, records
        yield app


@pytest.fixture
async def browser():
    """Headless Chromium."""
    browser = await Browser.open()
    yield browser
    await browser.close()


_ROWS = "return [...document.querySelectorAll('#{} tbody tr')].map(r => r.dataset.callSid)"


async def test_the_live_page_lists_the_calls_in_progress(console, browser):
    await logged_in(browser, console.state.url, TOKEN)
    live = await browser.wait_for(_ROWS.format("live-calls"), what="the live calls")
    await browser.screenshot("live")
    assert live == [c["call_sid"] for c in console.state.records if not c["ended_at"]]


async def test_the_call_list_shows_the_newest_first_and_filters_by_pipeline(console, browser):
    await logged_in(browser, console.state.url, TOKEN, page="calls")
    rows = await browser.wait_for(_ROWS.format("calls"), what="the call list")
    assert rows == [c["call_sid"] for c in console.state.records]
    await browser.screenshot("calls")
    await browser.type("#filters input[name=pipeline]", "default")
    await browser.type("#filters input[name=number]", "+15550100005")
    await browser.click("#filters button")
    await browser.wait_for(_ROWS.format("calls"), what="the filtered list")
    assert console.state.asked[-1] == {
        "pipeline": "default",
        "number": "+15550100005",
        "limit": "50",
        "offset": "0",
    }


async def test_a_call_shows_its_transcript_with_the_cut_struck_through_and_a_waterfall(
    console, browser
):
    call = console.state.records[-6]  # call 5: barge-in, tool call, keypad, recording
    await logged_in(browser, console.state.url, TOKEN, page=f"calls/{call['call_sid']}")
    turns = await browser.wait_for(
        "return [...document.querySelectorAll('#conversation .turn')].map(t => t.className)",
        what="the conversation",
    )
    await browser.screenshot("call_barge_in")
    assert turns == [f"turn {t['speaker']}" for t in call["turns"]]
    cut = await browser.js(
        "const t = document.querySelectorAll('#conversation .turn')[2];"
        "return [t.querySelector('.said').textContent, t.querySelector('del').textContent,"
        " !!t.querySelector('.cut')]"
    )
    assert cut == [HEARD, INTERRUPTED.removeprefix(HEARD).strip(), True]
    assert await browser.text("#conversation .keys") == "⌨ 4217#"
    assert "check_availability" in await browser.text("#conversation .tool")
    recording = await browser.js("return document.getElementById('recording').src")
    assert recording == console.state.url + call["recording_url"]
    bars = await browser.js(
        "return [...document.querySelectorAll('#waterfall .wrow')].map(r => ["
        " r.querySelector('.total').textContent,"
        " [...r.querySelectorAll('.seg')].map(s => [s.dataset.stage, s.style.width])])"
    )
    bot_turns = [t for t in call["turns"] if t["speaker"] == "bot"]
    slowest = max(t["latency_ms"] for t in bot_turns)
    assert [total for total, _ in bars] == [f"{t['latency_ms']} ms" for t in bot_turns]
    for (_, segments), turn in zip(bars, bot_turns, strict=True):
        widths = {stage: float(width.removesuffix("%")) for stage, width in segments}
        expected = {s: 100 * ms / slowest for s, ms in turn["stages"].items()}
        assert widths == pytest.approx(expected, abs=0.01)


def _percentile(values: list[int], p: int) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


async def test_the_pipeline_page_charts_p50_and_p90_reply_latency_over_time(console, browser):
    await logged_in(browser, console.state.url, TOKEN, page="pipelines/default")
    rows = await browser.wait_for(
        "const rows = [...document.querySelectorAll('#latency-table tr')].slice(1);"
        "return rows.length && rows.map(r => [...r.cells].slice(1).map(c => +c.textContent))",
        what="the latency table",
    )
    await browser.screenshot("pipeline_latency")
    points = sorted(
        (datetime.fromisoformat(c["started_at"]).timestamp() * 1000 + t["at_ms"], t["latency_ms"])
        for c in console.state.records
        for t in c["turns"]
        if t["speaker"] == "bot"
    )
    width = (points[-1][0] - points[0][0]) / 12
    buckets: dict[int, list[int]] = {}
    for at, ms in points:
        buckets.setdefault(min(11, int((at - points[0][0]) // width)), []).append(ms)
    expected = [
        [len(v), _percentile(v, 50), _percentile(v, 90)] for _, v in sorted(buckets.items())
    ]
    assert rows == expected
    assert await browser.js("return document.querySelectorAll('#latency polyline').length") == 2


async def test_the_console_refuses_a_wrong_token(console, browser):
    await browser.get(f"{console.state.url}/console")
    await browser.wait_for("return !document.getElementById('login').hidden", what="the log-in")
    await browser.type("#token", "not-the-token")
    await browser.click("#login button")
    error = await browser.wait_for(
        "return document.getElementById('login-error').textContent", what="the error"
    )
    assert error == "Wrong token."
    assert await browser.js("return document.cookie") == ""


async def test_the_pages_mu_law_codec_is_bit_exact_with_the_servers(console, browser):
    await browser.get(f"{console.state.url}/console")
    encoded, decoded = await browser.js(
        "return import('/console/static/mulaw.js').then(m => ["
        " Array.from({length: 65536}, (_, i) => m.ulawEncode(i - 32768)),"
        " Array.from({length: 256}, (_, i) => m.ulawDecode(i))])"
    )
    every_sample = np.arange(-32768, 32768, dtype=np.int16).tobytes()
    assert bytes(encoded) == pcm_to_ulaw(every_sample)
    every_byte = np.frombuffer(ulaw_to_pcm(bytes(range(256))), np.int16)
    assert decoded == every_byte.tolist()
