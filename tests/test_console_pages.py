"""The console's record pages in headless Chromium, reading the real records API.

The real server (its own SQLite file) takes a simulated phone call: the greeting, a booking
whose long reply the caller cuts in on, keys pressed, a goodbye (the `end_call` tool), recorded
by Twilio. The browser watches it in progress, then shows it as `GET /calls/{call_sid}` has it.
"""

import asyncio
import math
from dataclasses import replace
from datetime import datetime

import numpy as np
import pytest

from browser import CHROMEDRIVER, CHROMIUM, MISSING, Browser, logged_in
from calls import recorded_call, spoken
from pipelines.declaration import load_declarations
from server.local import serve_locally
from standins.script import dial, long_reply_to_bookings
from telephony.mulaw import pcm_to_ulaw, ulaw_to_pcm

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason=MISSING)

TOKEN = "console-pages-token-0123456789"
CUT_AFTER_SECS = 1.5  # of the long reply, heard before the caller cuts in
_ROWS = "return [...document.querySelectorAll('#{} tbody tr')].map(r => r.dataset.callSid)"


@pytest.fixture
def declarations() -> dict:
    """The shipped pipelines, the default one recording its calls through Twilio."""
    shipped = load_declarations()
    default = shipped["default"]
    recorded = default.call.model_copy(update={"record": True})
    return shipped | {"default": replace(default, call=recorded)}


@pytest.fixture
async def console_bot(standins, declarations, tmp_path):
    """The real server with the console on, its records in a database of this test's own."""
    standins.openai.responder = long_reply_to_bookings
    standins.openai.tokens_per_second = 8  # still streaming when the caller cuts in
    # API_TOKEN turns on outbound calls too, which need a number to call from.
    env = standins.env() | {"API_TOKEN": TOKEN}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'calls.db'}"
    async with serve_locally(env, declarations) as running:
        yield running


@pytest.fixture
async def browser():
    """Headless Chromium."""
    browser = await Browser.open()
    yield browser
    await browser.close()


async def _go(browser: Browser, page: str) -> None:
    await browser.js(f"location.hash = '#/{page}'")


def _percentile(values: list[int], p: int) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


async def test_the_console_shows_a_phone_call_with_a_barge_in_as_the_records_api_has_it(
    console_bot, standins, browser
):
    url = console_bot.url
    await logged_in(browser, url, TOKEN)  # the live page
    call = await dial(url)
    await call.listen()
    live = await browser.wait_for(_ROWS.format("live-calls"), what="the call in progress")
    await browser.screenshot("live")
    assert live == [call.call_sid]
    await spoken(call, "book_table.wav")
    await call.wait_for_bot_audio(timeout=10)
    await asyncio.sleep(CUT_AFTER_SECS)
    await spoken(call, "cancel.wav")
    await call.listen(timeout=10)
    await call.press("4217#")
    await call.listen(timeout=10)
    await spoken(call, "goodbye.wav")
    await call.wait_closed(timeout=15)
    record = await recorded_call(url, call.call_sid, token=TOKEN)
    turns = record["turns"]
    (cut,) = [t for t in turns if t["interrupted"]]
    assert cut["heard"] and cut["text"] != cut["heard"]

    # The list: this call, as the API lists it; a filter that leaves it out, asked of the API.
    await _go(browser, "calls")
    assert await browser.wait_for(_ROWS.format("calls"), what="the call list") == [call.call_sid]
    row = await browser.text("#calls tbody tr")
    assert record["from"] in row and record["end_reason"] in row
    await browser.screenshot("calls")
    await browser.type("#filters input[name=number]", "+15550000000")
    await browser.click("#filters button")
    await browser.wait_for(
        "return document.querySelectorAll('#calls tbody tr').length === 0", what="no calls"
    )
    await _go(browser, "live")
    none = "return document.querySelector('#page-live p')?.textContent"
    assert await browser.wait_for(none, what="no calls in progress") == "None."

    # The call: a conversation of its turns and events in order, the cut struck through.
    await _go(browser, f"calls/{call.call_sid}")
    bubbles = await browser.wait_for(
        "return [...document.querySelectorAll('#conversation .turn')].map(t => t.className)",
        what="the conversation",
    )
    await browser.screenshot("call_barge_in")
    said = [(t["seq"], f"turn {t['speaker']}") for t in turns]
    said += [(e["seq"], f"turn event {e['kind']}") for e in record["events"]]
    assert bubbles == [name for _, name in sorted(said) if name != "turn event recording"]
    index = turns.index(cut)
    shown_cut = await browser.js(
        "const turns = document.querySelectorAll('#conversation .bot, #conversation .caller');"
        f"const t = turns[{index}];"
        "return [t.querySelector('.said').textContent, t.querySelector('del').textContent,"
        " !!t.querySelector('.cut')]"
    )
    assert shown_cut == [cut["heard"], cut["text"].removeprefix(cut["heard"]).strip(), True]
    assert await browser.text("#conversation .keys") == "⌨ 4217#"
    assert '⚙ end_call({}) → {"ended":true}' in await browser.text("#conversation .tool_call")
    (recording,) = [e for e in record["events"] if e["kind"] == "recording"]
    (sid,) = standins.twilio.recordings
    assert recording["name"] == sid
    link = await browser.js("return document.getElementById('recording').href")
    assert link == f"{recording['detail']['url']}.mp3"
    assert link.startswith(standins.twilio.http_url) and link.endswith(f"/Recordings/{sid}.mp3")

    # The waterfall: one row per timed reply, each stage to scale, the API's numbers.
    bars = await browser.js(
        "return [...document.querySelectorAll('#waterfall .wrow')].map(r => ["
        " r.querySelector('.total').textContent,"
        " [...r.querySelectorAll('.seg')].map(s => [s.dataset.stage, s.style.width, s.title])])"
    )
    replies = [t for t in turns if t["speaker"] == "bot" and t["latency_ms"] is not None]
    assert len(replies) == 4  # to the booking, to "cancel", to the keys, to "goodbye"
    assert [total for total, _ in bars] == [f"{t['latency_ms']} ms" for t in replies]
    slowest = max(t["latency_ms"] for t in replies)
    for (_, segments), reply in zip(bars, replies, strict=True):
        widths = {stage: float(width.removesuffix("%")) for stage, width, _ in segments}
        expected = {s: 100 * ms / slowest for s, ms in reply["stages"].items() if ms > 0}
        assert widths == pytest.approx(expected, abs=0.01)
        drawn = [(stage, title.rpartition(": ")[2]) for stage, _, title in segments]
        assert drawn == [(s, f"{ms} ms") for s, ms in reply["stages"].items() if ms > 0]

    # The pipeline: p50 and p90 of these replies, over time.
    await _go(browser, "pipelines/default")
    rows = await browser.wait_for(
        "const rows = [...document.querySelectorAll('#latency-table tr')].slice(1);"
        "return rows.length && rows.map(r => [...r.cells].slice(1).map(c => +c.textContent))",
        what="the latency table",
    )
    await browser.screenshot("pipeline_latency")
    started_ms = datetime.fromisoformat(record["started_at"]).timestamp() * 1000
    points = sorted((started_ms + t["at_ms"], t["latency_ms"]) for t in replies)
    width = (points[-1][0] - points[0][0]) / 12
    buckets: dict[int, list[int]] = {}
    for at, ms in points:
        buckets.setdefault(min(11, int((at - points[0][0]) // width)), []).append(ms)
    expected = [
        [len(v), _percentile(v, 50), _percentile(v, 90)] for _, v in sorted(buckets.items())
    ]
    assert rows == expected
    assert await browser.js("return document.querySelectorAll('#latency polyline').length") == 2
    assert not await browser.console_errors()


async def test_the_console_refuses_a_wrong_token(console_bot, browser):
    await browser.get(f"{console_bot.url}/console")
    await browser.wait_for("return !document.getElementById('login').hidden", what="the log-in")
    await browser.type("#token", "not-the-token")
    await browser.click("#login button")
    error = await browser.wait_for(
        "return document.getElementById('login-error').textContent", what="the error"
    )
    assert error == "Wrong token."
    assert await browser.js("return document.cookie") == ""


async def test_the_pages_mu_law_codec_is_bit_exact_with_the_servers(console_bot, browser):
    await browser.get(f"{console_bot.url}/console")
    encoded, decoded = await browser.js(
        "return import('/console/static/mulaw.js').then(m => ["
        " Array.from({length: 65536}, (_, i) => m.ulawEncode(i - 32768)),"
        " Array.from({length: 256}, (_, i) => m.ulawDecode(i))])"
    )
    every_sample = np.arange(-32768, 32768, dtype=np.int16).tobytes()
    assert bytes(encoded) == pcm_to_ulaw(every_sample)
    every_byte = np.frombuffer(ulaw_to_pcm(bytes(range(256))), np.int16)
    assert decoded == every_byte.tolist()
