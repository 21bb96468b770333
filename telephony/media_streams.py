"""Twilio Media Streams messages: strict about what comes in, exact about what goes out."""

import base64
import binascii
import json
from collections import Counter
from dataclasses import dataclass

from loguru import logger
from pipecat.audio.dtmf.types import KeypadEntry

from telephony.mulaw import pcm_to_ulaw, ulaw_to_pcm

SAMPLE_RATE = 8000  # μ-law, mono: the only format a Media Stream carries
# A Twilio media message is ~300 bytes; anything near this is not Twilio.
MAX_MESSAGE_BYTES = 64 * 1024
# Per kind of problem, log the first few occurrences, then one in every hundred.
_LOG_FIRST = 3
_LOG_EVERY = 100


@dataclass(frozen=True)
class Media:
    """The caller's audio: the μ-law bytes Twilio sent, and as 16-bit PCM."""

    ulaw: bytes
    pcm: bytes


@dataclass(frozen=True)
class Dtmf:
    """The caller pressed a key."""

    digit: KeypadEntry


@dataclass(frozen=True)
class MarkEcho:
    """Twilio played the audio sent before the mark `name` (or cleared it)."""

    name: str


@dataclass(frozen=True)
class Stop:
    """The stream ended: the caller hung up."""


Event = Media | Dtmf | MarkEcho | Stop


class MediaStreamMessages:
    """Reads and writes one stream's messages.

    | Twilio → us                      | us → Twilio                      |
    |----------------------------------|----------------------------------|
    | `media` → Media                  | media(pcm) → `media` (μ-law)     |
    | `dtmf` → Dtmf                    | mark(name) → `mark`              |
    | `mark` → MarkEcho                | clear() → `clear`                |
    | `stop` → Stop                    |                                  |
    | anything malformed → None, one   |                                  |
    | log line (rate-limited)          |                                  |

    `parse` takes any message; `read` turns it into an event of an open stream.
    """

    def __init__(self, stream_sid: str, *, max_message_bytes: int = MAX_MESSAGE_BYTES):
        """Messages of the stream `stream_sid`; larger than `max_message_bytes` are dropped."""
        self.stream_sid = stream_sid
        self._max_message_bytes = max_message_bytes
        self._problems: Counter[str] = Counter()

    # -- out -------------------------------------------------------------------------------

    def media(self, pcm: bytes) -> str:
        """8 kHz 16-bit PCM → a `media` message of μ-law."""
        payload = base64.b64encode(pcm_to_ulaw(pcm)).decode("ascii")
        return self._message("media", media={"payload": payload})

    def mark(self, name: str) -> str:
        """A `mark` Twilio echoes once the audio sent before it has played."""
        return self._message("mark", mark={"name": name})

    def clear(self) -> str:
        """`clear`: Twilio drops the audio it has not played and echoes every pending mark."""
        return self._message("clear")

    def _message(self, event: str, **body: dict) -> str:
        return json.dumps({"event": event, "streamSid": self.stream_sid, **body})

    # -- in --------------------------------------------------------------------------------

    def read(self, data: str | bytes) -> Event | None:
        """A message of the open stream → its event; None if malformed or not for us."""
        message = self.parse(data)
        if message is None:
            return None
        event = message["event"]
        if event == "media":
            return self._media(message)
        if event == "dtmf":
            return self._dtmf(message)
        if event == "mark":
            return self._echo(message)
        if event == "stop":
            return Stop()
        if event in ("connected", "start"):
            self.problem(event, f"ignored a second '{event}' message")
        else:
            self.problem("event", f"ignored unknown event {event!r}")
        return None

    def parse(self, data: str | bytes) -> dict | None:
        """Decode one message to a dict with an `event`, or log why it is not one."""
        if len(data) > self._max_message_bytes:
            self.problem(
                "size", f"dropped a {len(data)}-byte message (limit {self._max_message_bytes})"
            )
            return None
        if isinstance(data, bytes):
            self.problem("binary", "dropped a binary message: Twilio sends JSON text")
            return None
        try:
            message = json.loads(data)
        except json.JSONDecodeError as e:
            self.problem("json", f"dropped a message that is not JSON ({e.msg}): {data[:60]!r}")
            return None
        except RecursionError:  # json's C decoder refuses deep nesting this way
            self.problem("json", f"dropped a message nested too deeply: {data[:60]!r}")
            return None
        if not isinstance(message, dict) or not isinstance(message.get("event"), str):
            self.problem("shape", f"dropped a message without an 'event': {data[:60]!r}")
            return None
        return message

    def _media(self, message: dict) -> Media | None:
        media = message.get("media")
        payload = media.get("payload") if isinstance(media, dict) else None
        if not isinstance(payload, str):
            self.problem("media", "dropped a 'media' message without media.payload")
            return None
        try:
            ulaw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            self.problem("base64", "dropped a 'media' message whose payload is not valid base64")
            return None
        return Media(ulaw, ulaw_to_pcm(ulaw)) if ulaw else None

    def _echo(self, message: dict) -> MarkEcho | None:
        mark = message.get("mark")
        name = mark.get("name") if isinstance(mark, dict) else None
        if not isinstance(name, str):
            self.problem("mark", "dropped a 'mark' message without mark.name")
            return None
        return MarkEcho(name)

    def _dtmf(self, message: dict) -> Dtmf | None:
        dtmf = message.get("dtmf")
        digit = dtmf.get("digit") if isinstance(dtmf, dict) else None
        try:
            return Dtmf(KeypadEntry(digit))
        except ValueError:
            self.problem("dtmf", f"dropped a 'dtmf' message with digit {digit!r:.20}")
            return None

    def problem(self, kind: str, text: str) -> None:
        """Log a problem with the stream's input: the first few of a kind, then one in 100."""
        self._problems[kind] += 1
        count = self._problems[kind]
        if count <= _LOG_FIRST or count % _LOG_EVERY == 0:
            suffix = f" ({count} so far)" if count > 1 else ""
            logger.warning(f"Twilio message problem: {text}{suffix}")
