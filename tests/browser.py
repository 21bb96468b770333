"""Headless Chromium for end-to-end tests of the console: Debian's `chromium` driven by Selenium.

Selenium's calls block, and the server under test runs on the test's event loop: every call
goes through a thread. The fake microphone plays a WAV file (Chromium's fake media stream).
Screenshots land in `out/console/`.
"""

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

SCREENSHOTS = Path(__file__).resolve().parent.parent / "out" / "console"
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
MISSING = "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"


class Browser:
    """One headless Chromium window; `microphone`: a WAV file it hears as its microphone."""

    def __init__(self, *, microphone: Path | None = None):
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM or ""
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--mute-audio"):
            options.add_argument(flag)
        options.add_argument("--window-size=1200,900")
        options.add_argument("--autoplay-policy=no-user-gesture-required")
        if microphone:
            options.add_argument("--use-fake-ui-for-media-stream")  # allow the microphone
            options.add_argument("--use-fake-device-for-media-stream")
            options.add_argument(f"--use-file-for-fake-audio-capture={microphone}%noloop")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))

    @classmethod
    async def open(cls, **kwargs) -> "Browser":
        """Start Chromium (in a thread: it takes a second)."""
        return await asyncio.to_thread(cls, **kwargs)

    async def run(self, function: Callable, *args):
        """`function(driver, *args)` off the event loop."""
        return await asyncio.to_thread(function, self.driver, *args)

    async def get(self, url: str) -> None:
        """Load `url`."""
        await self.run(lambda d: d.get(url))

    async def js(self, script: str, *args):
        """The value of `script` (a function body: `return …`) in the page."""
        return await self.run(lambda d: d.execute_script(script, *args))

    async def click(self, css: str) -> None:
        """Click the element `css` selects."""
        await self.run(lambda d: d.find_element(By.CSS_SELECTOR, css).click())

    async def type(self, css: str, text: str) -> None:
        """Type `text` into the element `css` selects."""
        await self.run(lambda d: d.find_element(By.CSS_SELECTOR, css).send_keys(text))

    async def text(self, css: str) -> str:
        """The visible text of the element `css` selects."""
        return await self.run(lambda d: d.find_element(By.CSS_SELECTOR, css).text)

    async def wait_for(self, script: str, *, timeout: float = 15.0, what: str = ""):
        """Poll `script` until it returns something truthy; its value. Fails after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.js(script)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"the page never showed {what or script}")
            await asyncio.sleep(0.1)

    async def screenshot(self, name: str) -> Path:
        """Save the whole page as `out/console/<name>.png`."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"

        def save(driver) -> None:
            height = driver.execute_script("return document.documentElement.scrollHeight")
            metrics = {"width": 1200, "height": height, "deviceScaleFactor": 1, "mobile": False}
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
            driver.save_screenshot(str(path))
            driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

        await self.run(save)
        return path

    async def console_errors(self) -> list[str]:
        """Severe messages from the page's JavaScript console."""
        entries = await self.run(lambda d: d.get_log("browser"))
        return [e["message"] for e in entries if e["level"] == "SEVERE"]

    async def close(self) -> None:
        """Quit Chromium."""
        await self.run(lambda d: d.quit())


async def logged_in(browser: Browser, url: str, token: str, page: str = "live") -> None:
    """Open the console's `page` at `url` and log in with `token`."""
    await browser.get(f"{url}/console#/{page}")
    await browser.wait_for("return !document.getElementById('login').hidden", what="the log-in")
    await browser.type("#token", token)
    await browser.click("#login button")
    await browser.wait_for("return !document.getElementById('nav').hidden", what="the console")
