"""The URLs Twilio requests and signs, built from PUBLIC_URL (never from the Host header)."""

from urllib.parse import urlsplit, urlunsplit

MEDIA_PATH = "/media"
VOICE_PATH = "/voice"
# Where Twilio reports an outbound call's progress, its answering-machine verdict and a
# finished recording (each request signed like the webhook).
STATUS_PATH = "/twilio/status"
AMD_PATH = "/twilio/amd"
RECORDING_PATH = "/twilio/recording"


def media_stream_url(public_url: str, token: str = "") -> str:
    """The `<Stream url>` for Media Streams (https → wss, http → ws), ending in `/<token>`."""
    parts = urlsplit(public_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = parts.path.rstrip("/") + MEDIA_PATH + (f"/{token}" if token else "")
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def webhook_url(public_url: str, path: str, query: str = "") -> str:
    """The full URL Twilio requested for `path`, query string included, as Twilio signs it."""
    return f"{public_url.rstrip('/')}{path}" + (f"?{query}" if query else "")
