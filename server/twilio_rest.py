"""Twilio's REST API for live calls, through the `twilio` library's async client."""

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
from loguru import logger
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from server.logs import basic_auth, register_secrets

T = TypeVar("T")
_CALL_NOT_FOUND = 20404
_TOO_MANY_REQUESTS = 429


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try a request that failed for a reason that may pass.

    Attempt n (from 1) that fails transiently is followed by a pause of
    `first_delay * factor ** (n - 1)`, capped at `max_delay` and shortened by up to `jitter`
    of itself at random (so many calls failing together do not retry in step). Each attempt
    may take `attempt_timeout`; all of them together, pauses included, `total_timeout`.
    """

    attempts: int = 4
    first_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 4.0
    jitter: float = 0.25
    attempt_timeout: float = 4.0
    total_timeout: float = 12.0

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The pause after failed attempt `attempt` (from 1); `rand` draws from [0, 1)."""
        full = min(self.max_delay, self.first_delay * self.factor ** (attempt - 1))
        return full * (1 - self.jitter * rand())


class TransientError(Exception):
    """A request failed in a way a later attempt may not: 5xx, 429, network, timeout."""


class TwilioRefused(Exception):
    """Twilio refused a request for good (4xx): the message is Twilio's, with its code."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CallState:
    """A call as Twilio's Call resource describes it."""

    call_sid: str
    status: str  # queued, ringing, in-progress, completed, busy, no-answer, failed, canceled
    answered_by: str | None  # with machine detection: human, machine_end_beep, fax, unknown…
    direction: str
    to: str
    duration: int | None  # seconds, once it ended


@dataclass(frozen=True)
class Recording:
    """A recording Twilio makes of a call; `url` is where its audio is fetched."""

    sid: str
    url: str


class TwilioCalls:
    """Ends, redirects, places, follows and records calls; one per server, one HTTP session.

    `retry` is a plain attribute: the policy for transient failures.
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str,
        retry: RetryPolicy | None = None,
    ):
        """Talk to the REST API at `base_url` (Twilio's, or a compatible local server)."""
        register_secrets(auth_token, basic_auth(account_sid, auth_token))
        self._http = AsyncTwilioHttpClient()
        # environment={}: TWILIO_EDGE/TWILIO_REGION would rewrite the host of base_url.
        self._client = Client(account_sid, auth_token, http_client=self._http, environment={})
        self._client.api.base_url = base_url
        self.base_url = base_url
        self.retry = retry or RetryPolicy()

    async def hang_up(self, call_sid: str) -> bool:
        """End the call; True if it ended now, False if it had already ended or the API failed.

        Transient failures are retried with backoff within the policy's bounds; the last one
        is logged at ERROR. Permanent refusals (4xx) are not retried.
        """
        return bool(await self._retrying(f"hanging up call {call_sid}", self._complete, call_sid))

    async def redirect(self, call_sid: str, twiml: str) -> bool:
        """Give the live call new instructions (a transfer); True if Twilio took them.

        Retried as `hang_up` is. Twilio stops the call's media stream as it runs them.
        """
        return bool(
            await self._retrying(f"redirecting call {call_sid}", self._update, call_sid, twiml)
        )

    async def dial(self, to: str, from_: str, twiml: str, *, ring_secs: int, status_callback: str):
        """Place a call to `to` that runs `twiml` once answered; its SID, or None if refused.

        Twilio lets it ring `ring_secs` seconds and posts its final status (`no-answer`,
        `busy`, `failed` or `completed`) to `status_callback`.
        """
        return await self._retrying(
            f"dialling {to}", self._create, to, from_, twiml, ring_secs, status_callback
        )

    async def _retrying(self, what: str, attempt_once, *args):
        """`attempt_once(*args)`, retried on transient failures within the policy's bounds."""
        policy = self.retry
        deadline = time.monotonic() + policy.total_timeout
        for attempt in range(1, policy.attempts + 1):
            remaining = deadline - time.monotonic()
            try:
                async with asyncio.timeout(min(policy.attempt_timeout, remaining)):
                    return await attempt_once(*args)
            except TransientError as e:
                failure = str(e)
            except TimeoutError:
                failure = f"no answer within {min(policy.attempt_timeout, remaining):.1f} s"
            pause = policy.delay(attempt)
            last = attempt == policy.attempts or time.monotonic() + pause >= deadline
            if last:
                logger.error(
                    f"gave up {what} through Twilio REST after {attempt} attempt(s): {failure}"
                )
                return None
            logger.warning(
                f"{what}, attempt {attempt} of {policy.attempts} failed "
                f"({failure}); retrying in {pause:.2f} s"
            )
            await asyncio.sleep(pause)
        return None

    async def _complete(self, call_sid: str) -> bool:
        """One attempt: True if ended now, False if refused for good; TransientError otherwise."""
        try:
            await self._client.calls(call_sid).update_async(status="completed")
        except TwilioRestException as e:
            _raise_if_transient(e)
            if e.code == _CALL_NOT_FOUND:
                logger.info(f"call {call_sid} had already ended")
            else:
                logger.error(f"Twilio refused to hang up {call_sid}: HTTP {e.status} {e.msg}")
            return False
        except (OSError, aiohttp.ClientError) as e:
            raise TransientError(f"could not reach Twilio: {e!r}") from e
        logger.info(f"hung up call {call_sid}")
        return True

    async def _update(self, call_sid: str, twiml: str) -> bool:
        """One redirect attempt: True if taken, False if refused; TransientError otherwise."""
        request = self._client.calls(call_sid).update_async(twiml=twiml)
        if await _refused_unless(request, f"redirect {call_sid}") is None:
            return False
        logger.info(f"redirected call {call_sid}")
        return True

    async def _create(
        self, to: str, from_: str, twiml: str, ring_secs: int, status_callback: str
    ) -> str | None:
        """One create attempt: the new call's SID, None if refused; TransientError otherwise."""
        request = self._client.calls.create_async(
            to=to,
            from_=from_,
            twiml=twiml,
            timeout=ring_secs,
            status_callback=status_callback,
            status_callback_event=["answered", "completed"],
        )
        call = await _refused_unless(request, f"dial {to}")
        if call is None:
            return None
        logger.info(f"dialling {to}: call {call.sid}")
        return call.sid

    async def place(self, **create) -> str:
        """Create an outbound call (`calls.create`'s keyword arguments); its SID.

        Not retried: a create that timed out may have placed the call. Raises `TwilioRefused`
        or `TransientError`.
        """
        async with _translated("place a call", self.retry.attempt_timeout):
            call = await self._client.calls.create_async(**create)
        return str(call.sid)

    async def fetch(self, call_sid: str) -> CallState:
        """The call as Twilio knows it now; raises `TwilioRefused` (404: no such call)."""
        async with _translated(f"fetch call {call_sid}", self.retry.attempt_timeout):
            call = await self._client.calls(call_sid).fetch_async()
        duration = str(call.duration) if call.duration is not None else ""
        return CallState(
            call_sid=str(call.sid),
            status=str(call.status),
            answered_by=call.answered_by,
            direction=str(call.direction),
            to=str(call.to),
            duration=int(duration) if duration.isdigit() else None,
        )

    async def start_recording(self, call_sid: str, *, callback: str) -> Recording:
        """Record both channels of the live call; Twilio posts `callback` when it is ready."""
        async with _translated(f"record call {call_sid}", self.retry.attempt_timeout):
            recording = await self._client.calls(call_sid).recordings.create_async(
                recording_channels="dual",
                recording_status_callback=callback,
                recording_status_callback_event=["completed", "absent"],
            )
        url = f"{self.base_url}/2010-04-01/Accounts/{recording.account_sid}/Recordings/"
        return Recording(sid=str(recording.sid), url=url + str(recording.sid))

    async def close(self) -> None:
        """Close the shared HTTP session."""
        await self._http.close()


async def _refused_unless(request: Awaitable[T], what: str) -> T | None:
    """`request`'s answer; None if Twilio refused to `what` for good (logged at ERROR).

    Raises TransientError if it may pass.
    """
    try:
        return await request
    except TwilioRestException as e:
        _raise_if_transient(e)
        logger.error(f"Twilio refused to {what}: HTTP {e.status} {e.msg}")
        return None
    except (OSError, aiohttp.ClientError) as e:
        raise TransientError(f"could not reach Twilio: {e!r}") from e


def _raise_if_transient(error: TwilioRestException) -> None:
    """A 5xx or 429 may pass: raise TransientError for it."""
    if error.status >= 500 or error.status == _TOO_MANY_REQUESTS:
        raise TransientError(f"HTTP {error.status} {error.msg}") from error


@asynccontextmanager
async def _translated(doing: str, within: float) -> AsyncIterator[None]:
    """Twilio's and the network's exceptions as `TwilioRefused` or `TransientError`.

    A request that takes more than `within` seconds is a `TransientError` too.
    """
    try:
        async with asyncio.timeout(within):
            yield
    except TwilioRestException as e:
        _raise_if_transient(e)
        raise TwilioRefused(e.status, f"could not {doing}: HTTP {e.status} {e.msg}") from e
    except (OSError, aiohttp.ClientError, TimeoutError) as e:
        raise TransientError(f"could not {doing}: Twilio unreachable ({e!r})") from e
