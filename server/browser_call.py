"""A call from the console's page: the stream a browser opens to talk to a pipeline.

The browser speaks Twilio's Media Streams protocol to the same `/media/<token>` endpoint
and the same pipeline a phone call gets; what it needs is what Twilio gets from `/voice`:
a call SID, a single-use stream token and the `start` message's custom parameters.
"""

import secrets
from dataclasses import dataclass

from pipelines.routing import PIPELINE_PARAMETER
from server.stream_tokens import StreamTokens
from server.twilio_urls import MEDIA_PATH

BROWSER_CALLER = "browser"  # the call's `from`: no phone number


@dataclass(frozen=True)
class BrowserCall:
    """What the page needs to open its stream."""

    call_sid: str
    stream_path: str  # the page connects to it on the origin it was loaded from
    parameters: dict[str, str]

    def as_json(self) -> dict:
        """The answer to the page's request."""
        return {
            "call_sid": self.call_sid,
            "stream_path": self.stream_path,
            "parameters": self.parameters,
        }


def new_browser_call(tokens: StreamTokens, pipeline: str) -> BrowserCall:
    """A fresh call SID (Twilio's shape, so records and logs treat it alike) and its token."""
    call_sid = "CA" + secrets.token_hex(16)
    parameters = {
        "caller": BROWSER_CALLER,
        "called": "console",
        "call_sid": call_sid,
        PIPELINE_PARAMETER: pipeline,
    }
    return BrowserCall(call_sid, f"{MEDIA_PATH}/{tokens.issue(call_sid)}", parameters)
