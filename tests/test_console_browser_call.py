"""A call to the bot from the console's page, in headless Chromium with a fake microphone.

The page speaks Twilio's Media Streams protocol to the same `/media/<token>` endpoint and the
same pipeline a phone call uses; the microphone plays a recording; the page plays the bot's
audio and echoes its marks like Twilio's playout buffer.
"""

import base64

import numpy as np
import pytest

from browser import CHROMEDRIVER, CHROMIUM, MISSING, SCREENSHOTS, Browser, logged_in
from calls import final_transcripts, heard_matches, user_texts
from recordings import recording
from standins.audio import pcm_to_ulaw, read_wav, write_wav
from standins.script import BOOK_TABLE, BOOKING_REPLY, GREETING
from standins.speech import synthesize

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason=MISSING)

TOKEN = "console-test-token-0123456789"
QUIET_SECS = 5.0  # the microphone is silent while the greeting plays


@pytest.fixture
async def console_bot(standins, declarations):
    """The real server with the console on (API_TOKEN set)."""
    from server.local import serve_locally

    async with serve_locally(standins.env() | {"API_TOKEN": TOKEN}, declarations) as running:
        yield running


@pytest.fixture
def microphone():
    """A WAV file for Chromium's fake microphone: a pause, then the caller books a table."""
    quiet = np.zeros(int(QUIET_SECS * 8000), np.int16).tobytes()
    pcm = quiet + read_wav(recording("book_table.wav"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / "microphone_book_table.wav"
    write_wav(path, pcm)
    return path


@pytest.fixture
async def browser(microphone):
    """Headless Chromium hearing `microphone`."""
    browser = await Browser.open(microphone=microphone)
    yield browser
    await browser.close()


def _bursts(value: list[str]) -> list[bytes]:
    return [base64.b64decode(burst) for burst in value]


async def test_the_browser_hears_the_greeting_and_the_reply_to_what_its_microphone_said(
    console_bot, standins, browser
):
    await logged_in(browser, console_bot.url, TOKEN, page="talk")
    await browser.wait_for("return document.getElementById('call')", what="the call button")
    await browser.screenshot("talk")
    await browser.click("#call")
    await browser.wait_for("return window.browserPhone.state === 'connected'", what="connected")
    reply_bytes = len(pcm_to_ulaw(synthesize(BOOKING_REPLY).pcm)) - 320
    heard = await browser.wait_for(
        "const b = window.browserPhone.heardBursts();"
        f"return b.length >= 2 && atob(b[1]).length >= {reply_bytes} && b",
        timeout=30,
        what="the greeting and the reply played",
    )
    await browser.screenshot("browser_call")

    greeting, reply = _bursts(heard)[:2]
    assert heard_matches(greeting, GREETING)
    assert heard_matches(reply, BOOKING_REPLY)
    assert final_transcripts(standins) == [BOOK_TABLE]
    assert user_texts(standins.openai.requests[-1].body) == [BOOK_TABLE]
    (call,) = console_bot.app.state.calls.values()
    assert call.browser and call.start.parameters["caller"] == "browser"
    said = [(m["role"], m["content"]) for m in call.context.get_messages()[-2:]]
    assert said == [("user", BOOK_TABLE), ("assistant", BOOKING_REPLY)]
    page = await browser.text("#phone-heard")
    assert page.startswith("Bot audio heard:") and "in 2 replies" in page
    assert await browser.js("return window.browserPhone.marksEchoed") > 0

    await browser.click("#hang-up")
    await browser.wait_for("return window.browserPhone.state === 'ended'", what="hung up")
    while console_bot.app.state.calls:
        await browser.wait_for("return true")
    assert standins.twilio.hangups == []  # no Twilio call behind it: nothing to hang up
    assert not await browser.console_errors()
