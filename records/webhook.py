"""The post-call webhook: each finished call's record POSTed as JSON, signed, retried.

The body is the record as `GET /calls/{call_sid}` returns it. `X-Voicebot-Signature` is
`sha256=` and the hex HMAC-SHA256 of the raw body under CALL_WEBHOOK_SECRET: a receiver
computes it over the bytes it got and compares in constant time. A delivery is retried with
backoff until a 2xx or RETRY_DELAYS_SECS run out; it runs on its own task, so a receiver
that is down or slow never touches a call.
"""

import asyncio
import hashlib
import hmac
import json

import aiohttp
from loguru import logger

SIGNATURE_HEADER = "X-Voicebot-Signature"
RETRY_DELAYS_SECS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)  # 7 attempts over about a minute
ATTEMPT_TIMEOUT_SECS = 10.0
MAX_DELIVERIES = 1000  # deliveries under way at once; more are dropped, with a log line


def signature(secret: str, body: bytes) -> str:
    """The `X-Voicebot-Signature` value of `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    """Delivers finished records to webhook URLs, each on its own task."""

    def __init__(self, secret: str, *, delays: tuple[float, ...] = RETRY_DELAYS_SECS):
        """Sign with `secret`; wait `delays` between attempts."""
        self._secret = secret
        self._delays = delays
        self._deliveries: set[asyncio.Task] = set()
        self._session: aiohttp.ClientSession | None = None
        self.delivered = 0
        self.failed = 0

    def send(self, url: str, record: dict) -> None:
        """Deliver `record` to `url` from now on; never waits."""
        if len(self._deliveries) >= MAX_DELIVERIES:
            self.failed += 1
            logger.error(f"post-call webhook: {MAX_DELIVERIES} deliveries under way; dropped one")
            return
        body = json.dumps(record, separators=(",", ":")).encode()
        task = asyncio.get_running_loop().create_task(
            self._deliver(url, body, record["call_sid"]), name="post-call-webhook"
        )
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def close(self, within_secs: float = 5.0) -> None:
        """Give deliveries under way `within_secs` to finish, then stop them."""
        if self._deliveries:
            _done, left = await asyncio.wait(self._deliveries, timeout=within_secs)
            for task in left:
                task.cancel()
            if left:
                self.failed += len(left)
                logger.error(f"post-call webhook: {len(left)} deliveries stopped at shutdown")
        if self._session:
            await self._session.close()

    async def _deliver(self, url: str, body: bytes, call_sid: str) -> None:
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(self._secret, body),
        }
        attempts = len(self._delays) + 1
        for attempt in range(1, attempts + 1):
            why = await self._post(url, body, headers)
            if why is None:
                self.delivered += 1
                return
            if attempt == attempts:
                break
            if attempt == 1:
                logger.warning(f"post-call webhook for {call_sid}: {why}; retrying")
            await asyncio.sleep(self._delays[attempt - 1])
        self.failed += 1
        logger.error(f"post-call webhook for {call_sid}: gave up after {attempts} attempts ({why})")

    async def _post(self, url: str, body: bytes, headers: dict) -> str | None:
        """One attempt; None if the receiver took it, else what went wrong."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=ATTEMPT_TIMEOUT_SECS)
            )
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as e:
            return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
