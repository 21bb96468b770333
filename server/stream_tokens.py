"""Single-use, expiring tokens that tie a media stream to the webhook that answered its call.

Twilio signs the media WebSocket upgrade over the stream URL alone, so a fixed `/media` URL
has one signature forever: anyone who once saw it could replay it. The `<Stream>` URL
`/voice` answers carries a token instead (`/media/<token>`), so each call's upgrade has its
own signature, and the token is refused once used, once expired, or for another call.

A token is `<call SID>.<expiry>.<HMAC>`, keyed by a secret derived from the auth token:
any worker process can check it without shared state. "Used" lives in the admission store
(`claim`), which every worker shares.
"""

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

TOKEN_TTL_SECS = 60.0  # Twilio opens the stream within a second or two of the TwiML


class StreamTokenError(Exception):
    """The token is forged, expired, already used, or for another call."""


class StreamTokens:
    """Issues and redeems stream tokens with a key derived from `auth_token`."""

    def __init__(
        self,
        auth_token: str,
        *,
        claim: Callable[[str, float], bool],
        ttl_secs: float = TOKEN_TTL_SECS,
        clock: Callable[[], float] = time.time,
    ):
        """`claim(call_sid, expires)`: True the first time a token for `call_sid` is redeemed."""
        self._key = hashlib.sha256(b"stream-token:" + auth_token.encode()).digest()
        self._claim, self._ttl, self._clock = claim, ttl_secs, clock

    def issue(self, call_sid: str) -> str:
        """A token for the media stream of `call_sid`, valid for `ttl_secs`."""
        payload = f"{call_sid}.{int(self._clock() + self._ttl)}"
        return f"{payload}.{self._mac(payload)}"

    def redeem(self, token: str) -> str:
        """The call SID the token was issued for; raises `StreamTokenError` saying why not."""
        payload, _, mac = token.rpartition(".")
        call_sid, _, expires = payload.partition(".")
        if not (call_sid and expires.isdigit() and hmac.compare_digest(mac, self._mac(payload))):
            raise StreamTokenError("a stream token this server did not issue")
        if int(expires) < self._clock():
            raise StreamTokenError(f"an expired stream token (call {call_sid})")
        if not self._claim(call_sid, float(expires)):
            raise StreamTokenError(f"a stream token already used (call {call_sid}): a replay")
        return call_sid

    def _mac(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode()


class ClaimedSids:
    """`claim` for one process: remembers each claimed call SID until its token expires."""

    def __init__(self, clock: Callable[[], float] = time.time):
        """Start with nothing claimed."""
        self._until: dict[str, float] = {}
        self._clock = clock

    def __call__(self, call_sid: str, expires: float) -> bool:
        """True if `call_sid` was not claimed yet (and claim it)."""
        now = self._clock()
        self._until = {sid: until for sid, until in self._until.items() if until >= now}
        if call_sid in self._until:
            return False
        self._until[call_sid] = expires
        return True
