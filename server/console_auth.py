"""Who may use the operator's console: the `API_TOKEN` bearer, or the cookie that keeps it.

The console's pages send the token as `Authorization: Bearer` (from the cookie, which its
script reads), so the records API needs nothing else; the browser's WebSocket upgrade cannot
set a header, so a browser call is authorised by the cookie. The cookie is `SameSite=Strict`
(another site's page cannot make the browser send it) and an upgrade must also come from the
server's own origin.
"""

import hmac
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

COOKIE = "console_token"
COOKIE_MAX_AGE_SECS = 30 * 24 * 3600


class ConsoleAuth:
    """Checks requests against `api_token`; with no token the console is off (nothing passes)."""

    def __init__(self, api_token: str | None, public_url: str):
        """`public_url`: the server's base URL, the origin browser calls must come from."""
        self._token = api_token or None
        parts = urlsplit(public_url)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self.secure_cookie = parts.scheme == "https"

    @property
    def enabled(self) -> bool:
        """Whether API_TOKEN is set."""
        return self._token is not None

    def bearer_ok(self, connection: HTTPConnection) -> bool:
        """The request carries `Authorization: Bearer <API_TOKEN>`."""
        scheme, _, token = connection.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self._matches(token.strip())

    def cookie_ok(self, connection: HTTPConnection) -> bool:
        """The request carries the console's cookie with the token."""
        return self._matches(connection.cookies.get(COOKIE, ""))

    def browser_call_ok(self, connection: HTTPConnection) -> bool:
        """A WebSocket upgrade from the console's page: its cookie, from our own origin.

        Browsers always send `Origin` on an upgrade; a check of it stops another site's page
        from riding the cookie even where `SameSite` is not enforced.
        """
        origin = connection.headers.get("Origin", "")
        same_origin = origin in (self._origin, _host_origin(connection))
        return same_origin and self.cookie_ok(connection)

    def _matches(self, token: str) -> bool:
        return bool(self._token and token) and hmac.compare_digest(
            token.encode(), (self._token or "").encode()
        )


def _host_origin(connection: HTTPConnection) -> str:
    """The origin the browser loaded the page from, when that is not PUBLIC_URL (a local run).

    Only ever compared with `Origin`, which the browser sets: a forged Host changes nothing
    for a page of another site, whose `Origin` is its own.
    """
    scheme = "https" if connection.url.scheme in ("https", "wss") else "http"
    return f"{scheme}://{connection.headers.get('Host', '')}"
