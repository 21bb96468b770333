"""Single-use, expiring tokens that tie a media stream to the webhook that answered its call.

Twilio signs the media WebSocket upgrade over the stream URL alone, so a fixed `/media` URL
has one signature forever: anyone who once saw it could replay it. The `<Stream>` URL
`/voice` answers carries a token instead (`/media/<token>`), so each call's upgrade has its
own signature, and the token is refused once used, once expired, or for another call.

A token is `<call SID>[~<leg>].<expiry>.<HMAC>`, keyed by a secret derived from the auth
token: any worker process can check it without shared state. "Used" lives where every worker
shares it (`claim`: files on one machine, `ClaimedSids`; a PostgreSQL table for instances on
many, `ClaimedStreams`), per call SID and leg: a call that comes back to the bot after a
transfer nobody answered opens its second stream as a new leg.
"""

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import text

from server.shared_database import SharedDatabase

TOKEN_TTL_SECS = 60.0  # Twilio opens the stream within a second or two of the TwiML
_PRUNE_EVERY = 100  # claims between two clean-ups of expired claim files


class StreamTokenError(Exception):
    """The token is forged, expired, already used, or for another call."""


class StreamTokens:
    """Issues and redeems stream tokens with a key derived from `auth_token`."""

    def __init__(
        self,
        auth_token: str,
        *,
        claim: Callable[[str, float], Awaitable[bool]],
        ttl_secs: float = TOKEN_TTL_SECS,
        clock: Callable[[], float] = time.time,
    ):
        """`claim(call_sid, expires)`: True the first time a token for `call_sid` is redeemed."""
        self._key = hashlib.sha256(b"stream-token:" + auth_token.encode()).digest()
        self._claim, self._ttl, self._clock = claim, ttl_secs, clock

    def issue(self, call_sid: str, leg: str = "") -> str:
        """A token for the media stream of `call_sid`, valid for `ttl_secs`.

        `leg`: which of the call's streams (none: its first).
        """
        stream = f"{call_sid}~{leg}" if leg else call_sid
        payload = f"{stream}.{int(self._clock() + self._ttl)}"
        return f"{payload}.{self._mac(payload)}"

    async def redeem(self, token: str) -> str:
        """The call SID the token was issued for; raises `StreamTokenError` saying why not.

        The claim's own errors pass through (`DatabaseUnavailable`).
        """
        payload, _, mac = token.rpartition(".")
        stream, _, expires = payload.partition(".")
        call_sid = stream.partition("~")[0]
        if not (call_sid and expires.isdigit() and hmac.compare_digest(mac, self._mac(payload))):
            raise StreamTokenError("a stream token this server did not issue")
        if int(expires) < self._clock():
            raise StreamTokenError(f"an expired stream token (call {call_sid})")
        if not await self._claim(stream, float(expires)):
            raise StreamTokenError(f"a stream token already used (call {call_sid}): a replay")
        return call_sid

    def _mac(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode()


class ClaimedSids:
    """`claim` shared by every process of a server: one file per claimed call SID.

    `O_CREAT | O_EXCL` makes the first claim win across processes; a file names its token's
    expiry, after which the SID may be claimed again (and the file is cleaned up).
    """

    def __init__(self, directory: Path, clock: Callable[[], float] = time.time):
        """Keep claims in `directory` (created if missing)."""
        self._directory = Path(directory)
        self._directory.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._claims = 0

    async def __call__(self, call_sid: str, expires: float) -> bool:
        """True if `call_sid` was not claimed yet (and claim it)."""
        return self._claim(call_sid, expires)

    def _claim(self, call_sid: str, expires: float) -> bool:
        self._claims += 1
        if self._claims % _PRUNE_EVERY == 0:
            self._prune()
        path = self._directory / hashlib.sha256(call_sid.encode()).hexdigest()[:32]
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if self._expired(path):
                path.unlink(missing_ok=True)
                return self._claim(call_sid, expires)
            return False
        with os.fdopen(fd, "w") as file:
            file.write(f"{expires:.0f}")
        return True

    def _expired(self, path: Path) -> bool:
        try:
            return float(path.read_text() or "inf") < self._clock()
        except (OSError, ValueError):
            return False  # being written by another process right now: not expired

    def _prune(self) -> None:
        for path in self._directory.iterdir():
            if self._expired(path):
                path.unlink(missing_ok=True)


class ClaimedStreams:
    """`claim` shared by every instance through PostgreSQL: one row per claimed stream.

    The first INSERT wins (a concurrent one waits on the key, then does nothing); a row names
    its token's expiry, after which it is pruned and the stream may be claimed again.
    """

    def __init__(self, database: SharedDatabase):
        """Keep claims in `database`'s `stream_claims`."""
        self._database = database

    async def __call__(self, stream: str, expires: float) -> bool:
        """True if `stream` was not claimed yet (and claim it); `DatabaseUnavailable` if down."""
        async with self._database.transaction("claiming a stream token") as connection:
            await connection.execute(text("DELETE FROM stream_claims WHERE expires_at < now()"))
            claimed = await connection.scalar(
                text(
                    "INSERT INTO stream_claims (stream, expires_at) "
                    "VALUES (:stream, to_timestamp(:expires)) "
                    "ON CONFLICT (stream) DO NOTHING RETURNING stream"
                ),
                {"stream": stream, "expires": expires},
            )
        return claimed is not None
