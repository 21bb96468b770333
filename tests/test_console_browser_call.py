"""A call to the bot from the console's page, in headless Chromium with a fake microphone.

The page speaks Twilio's Media Streams protocol to the same `/media/<token>` endpoint and the
same pipeline a phone call uses; the microphone plays a recording; the page plays the bot's
audio and echoes its marks like Twilio's playout buffer.
"""

import base64
from pathlib import Path

import httpx
import numpy as np
import pytest

from browser import CHROMEDRIVER, CHROMIUM, MISSING, SCREENSHOTS, Browser, logged_in
from calls import final_transcripts, heard_matches, recorded_call, user_texts
from harness.barge_in import answer_to_barge_in, assistant_words, words_heard, words_off
from recordings import recording
from standins.audio import pcm_to_ulaw, read_wav, write_wav
from standins.openai_replies import LONG_REPLY, scripted_reply
from standins.script import BOOK_TABLE, BOOKING_REPLY, GREETING, long_reply_to_bookings
from standins.speech import synthesize

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason=MISSING)

TOKEN = "console-test-token-0123456789"
QUIET_SECS = 5.0  # the microphone is silent while the greeting plays
BARGE_IN_AFTER_SECS = 6.0  # the long reply starts ~0.8 s after the booking (later on a busy
# machine) and lasts ~20 s: cut well inside it whatever the load


@pytest.fixture
async def console_bot(standins, declarations, tmp_path):
    """The real server with the console on (API_TOKEN set), its records its own."""
    from server.local import serve_locally

    # API_TOKEN turns on outbound calls too, which need a number to call from.
    env = standins.env() | {"API_TOKEN": TOKEN}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'calls.db'}"
    async with serve_locally(env, declarations) as running:
        yield running


def _quiet(secs: float) -> bytes:
    return np.zeros(int(secs * 8000), np.int16).tobytes()


def _microphone(name: str, *parts: bytes) -> Path:
    """A WAV file for Chromium's fake microphone, under out/console/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"microphone_{name}.wav"
    write_wav(path, b"".join(parts))
    return path


@pytest.fixture
async def browser():
    """Headless Chromium; its microphone, after a pause for the greeting, books a table."""
    microphone = _microphone(
        "book_table", _quiet(QUIET_SECS), read_wav(recording("book_table.wav"))
    )
    browser = await Browser.open(microphone=microphone)
    yield browser
    await browser.close()


@pytest.fixture
async def barging_browser():
    """Headless Chromium whose microphone books a table, then cuts in on the reply."""
    microphone = _microphone(
        "barge_in",
        _quiet(QUIET_SECS),
        read_wav(recording("book_table.wav")),
        _quiet(BARGE_IN_AFTER_SECS),
        read_wav(recording("cancel.wav")),
    )
    browser = await Browser.open(microphone=microphone)
    yield browser
    await browser.close()


async def _call_from_the_page(browser: Browser, url: str) -> None:
    await logged_in(browser, url, TOKEN, page="talk")
    await browser.wait_for("return document.getElementById('call')", what="the call button")
    await browser.screenshot("talk")
    await browser.click("#call")
    await browser.wait_for("return window.browserPhone.state === 'connected'", what="connected")


async def _heard_bursts(browser: Browser, total: int) -> list[bytes]:
    """The page's bursts of bot audio (split by pauses), once `total` bytes have played."""
    await browser.wait_for(
        f"return window.browserPhone.heardBytes >= {total}", timeout=40, what=f"{total} B played"
    )
    return [base64.b64decode(burst) for burst in await browser.js(_BURSTS)]


_BURSTS = "return window.browserPhone.heardBursts()"


def _played(text: str) -> int:
    """Bytes of the stand-in voice saying `text` as the phone plays them: whole 40 ms chunks."""
    spoken = len(pcm_to_ulaw(synthesize(text).pcm))
    return spoken + (-spoken % 320)


async def test_the_browser_hears_the_greeting_and_the_reply_to_what_its_microphone_said(
    console_bot, standins, browser
):
    await _call_from_the_page(browser, console_bot.url)
    bursts = await _heard_bursts(browser, _played(GREETING) + _played(BOOKING_REPLY))
    await browser.screenshot("browser_call")
    greeting, reply = bursts[0], b"".join(bursts[1:])  # a busy host's playout gap splits one

    assert heard_matches(greeting, GREETING)
    assert heard_matches(reply, BOOKING_REPLY)
    assert final_transcripts(standins) == [BOOK_TABLE]
    assert user_texts(standins.openai.requests[-1].body) == [BOOK_TABLE]
    (call,) = console_bot.app.state.calls.values()
    assert call.browser and call.start.parameters["caller"] == "browser"
    said = [(m["role"], m["content"]) for m in call.context.get_messages()[-2:]]
    assert said == [("user", BOOK_TABLE), ("assistant", BOOKING_REPLY)]
    page = await browser.text("#phone-heard")
    assert page.startswith("Bot audio heard:") and f"in {len(bursts)} replies" in page
    assert await browser.js("return window.browserPhone.marksEchoed") > 0

    await browser.click("#hang-up")
    await browser.wait_for("return window.browserPhone.state === 'ended'", what="hung up")
    while console_bot.app.state.calls:
        await browser.wait_for("return true")
    assert standins.twilio.hangups == []  # no Twilio call behind it: nothing to hang up
    assert not await browser.console_errors()

    # On record like any other call.
    record = await recorded_call(console_bot.url, call.start.call_sid, token=TOKEN)
    async with httpx.AsyncClient(base_url=console_bot.url) as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        listed = (await client.get("/calls", headers=auth)).json()["calls"]
    assert [(c["call_sid"], c["from"]) for c in listed] == [(call.start.call_sid, "browser")]
    turns = [(t["speaker"], t["text"], t["heard"]) for t in record["turns"]]
    assert turns == [
        ("bot", GREETING, GREETING),
        ("caller", BOOK_TABLE, None),
        ("bot", BOOKING_REPLY, BOOKING_REPLY),
    ]
    assert record["turns"][2]["latency_ms"] > 0  # timed by the page's echoed marks


async def test_cutting_in_from_the_browser_clears_its_playout_and_the_context_holds_what_it_heard(
    console_bot, standins, barging_browser
):
    standins.openai.responder = long_reply_to_bookings
    await _call_from_the_page(barging_browser, console_bot.url)
    # The cut-in is ~14 s of microphone audio after the call connects: wait well past that.
    await barging_browser.wait_for(
        "return window.browserPhone.clears > 0", timeout=40, what="a clear"
    )
    cancel = "Actually, cancel that. I need to change my reservation."
    answer = scripted_reply([{"role": "user", "content": cancel}], None).text
    await barging_browser.wait_for("return window.browserPhone.bursts.length >= 3", what="a reply")
    before = await barging_browser.js(
        "const b = window.browserPhone.bursts; return b[0].length + b[1].length"
    )
    greeting, cut, reply = await _heard_bursts(barging_browser, before + _played(answer))
    await barging_browser.screenshot("browser_call_barge_in")

    assert heard_matches(greeting, GREETING)
    long_reply = pcm_to_ulaw(synthesize(LONG_REPLY).pcm)
    assert long_reply.startswith(cut[:-320]) and len(cut) < len(long_reply) / 2
    assert heard_matches(reply, answer)
    request = answer_to_barge_in(standins)
    heard = words_heard(LONG_REPLY, len(cut) / 8000)
    assert words_off(heard, assistant_words(request)) <= 1, (heard, assistant_words(request))


@pytest.fixture
async def browser_asking_for_the_manager():
    """Headless Chromium whose microphone asks for the manager (a transfer)."""
    manager = read_wav(recording("manager.wav"))
    browser = await Browser.open(microphone=_microphone("manager", _quiet(QUIET_SECS), manager))
    yield browser
    await browser.close()


async def test_a_browser_call_is_never_transferred_through_twilio_the_bot_carries_on(
    console_bot, standins, declarations, browser_asking_for_the_manager
):
    browser = browser_asking_for_the_manager
    manager = declarations["default"].transfers[0]
    handoff = pcm_to_ulaw(synthesize(manager.handoff).pcm)
    await _call_from_the_page(browser, console_bot.url)
    total = _played(GREETING) + _played(manager.handoff) + _played(manager.unanswered)
    bursts = await _heard_bursts(browser, total)
    then = b"".join(bursts[1:])  # the unanswered line may follow the hand-off without a pause

    assert then.startswith(handoff[:-320])
    assert heard_matches(then[_played(manager.handoff) :], manager.unanswered)
    assert standins.twilio.requests == []  # no redirect, nobody dialled
    (call,) = console_bot.app.state.calls.values()
    assert call.transferred_to is None
    assert call.context.get_messages()[-1] == {"role": "assistant", "content": manager.unanswered}
