"""Twilio Media Streams serializer: μ-law 8 kHz in and out, strict about what it accepts."""

import base64
import binascii
import json
import time
from collections import Counter

from loguru import logger
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    Frame,
    InputDTMFFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
)
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.serializers.base_serializer import FrameSerializer

from processors.frames import PlaybackEchoFrame, PlaybackMarkFrame
from telephony.frames import MulawAudioFrame
from telephony.mulaw import pcm_to_ulaw, ulaw_to_pcm

TWILIO_SAMPLE_RATE = 8000
# A Twilio media message is ~300 bytes; anything near this is not Twilio.
CLEAR_GUARD_SECS = 0.1  # bot audio this soon after a `clear` belongs to before it
MAX_MESSAGE_BYTES = 64 * 1024
# Per kind of problem, log the first few occurrences, then one in every hundred.
_LOG_FIRST = 3
_LOG_EVERY = 100


class TwilioSerializer(FrameSerializer):
    """Converts between Pipecat frames and Twilio Media Streams messages, with no resampling.

    | Twilio → frames                     | frames → Twilio                        |
    |-------------------------------------|----------------------------------------|
    | `media` → MulawAudioFrame (PCM)     | OutputAudioRawFrame → `media` (μ-law)  |
    | `dtmf` → InputDTMFFrame             | InterruptionFrame → `clear`            |
    | `mark` we sent → PlaybackEchoFrame  | PlaybackMarkFrame → `mark`             |
    | `stop` → (remembered: caller left)  | OutputTransportMessage(Urgent)Frame →  |
    | anything malformed → one log line   |   the message as JSON                  |

    A malformed message is dropped with a warning naming the problem; the call goes on.
    Hanging up is not the serializer's job (see `server/twilio_rest.py`).
    """

    def __init__(self, stream_sid: str, *, max_message_bytes: int = MAX_MESSAGE_BYTES):
        """Serialize for the stream `stream_sid`; messages over `max_message_bytes` are dropped."""
        super().__init__()
        self._stream_sid = stream_sid
        self._max_message_bytes = max_message_bytes
        self._problems: Counter[str] = Counter()
        self._cleared_at_id, self._cleared_at = 0, 0.0  # the last interruption sent as `clear`
        self._marks_out: set[str] = set()  # marks sent and not yet echoed
        self.stopped = False

    async def setup(self, setup: FrameProcessorSetup):
        """Refuse a pipeline that is not 8 kHz: resampling adds latency in bursts."""
        rates = (setup.audio_in_sample_rate, setup.audio_out_sample_rate)
        if rates != (TWILIO_SAMPLE_RATE, TWILIO_SAMPLE_RATE):
            raise ValueError(f"Twilio pipelines must run at 8000 Hz in and out, got {rates}")

    async def serialize(self, frame: Frame) -> str | None:
        """Frame → Twilio message, or None for frames Twilio has no message for."""
        if isinstance(frame, OutputAudioRawFrame):
            return None if self._stale(frame) else self._media(frame)
        if isinstance(frame, InterruptionFrame):
            self._cleared_at_id, self._cleared_at = frame.id, time.monotonic()
            return json.dumps({"event": "clear", "streamSid": self._stream_sid})
        if isinstance(frame, PlaybackMarkFrame):
            mark = {"name": str(frame.message)}
            self._marks_out.add(mark["name"])
            return json.dumps({"event": "mark", "streamSid": self._stream_sid, "mark": mark})
        if isinstance(frame, (OutputTransportMessageFrame, OutputTransportMessageUrgentFrame)):
            self._remember_mark(frame.message)
            return json.dumps(frame.message)
        return None

    def _remember_mark(self, message: object) -> None:
        """A `mark` sent verbatim will be echoed like ours."""
        if isinstance(message, dict) and message.get("event") == "mark":
            mark = message.get("mark")
            if isinstance(mark, dict):
                self._marks_out.add(str(mark.get("name")))

    def _stale(self, frame: OutputAudioRawFrame) -> bool:
        """Audio of before the last `clear` that pipecat's output still writes after it.

        Its output task finishes the chunk it had taken, and chunks the frame it was cutting,
        when an interruption comes. Nothing new can follow a `clear` that soon: a paused
        reply resumes only after the caller is quiet, a new one only after their turn.
        """
        return (
            frame.id < self._cleared_at_id or time.monotonic() - self._cleared_at < CLEAR_GUARD_SECS
        )

    def _media(self, frame: OutputAudioRawFrame) -> str | None:
        if frame.sample_rate != TWILIO_SAMPLE_RATE or frame.num_channels != 1:
            self._problem("audio", f"dropped {frame.sample_rate} Hz audio: Twilio plays 8 kHz mono")
            return None
        if not frame.audio:
            return None
        payload = base64.b64encode(pcm_to_ulaw(frame.audio)).decode("ascii")
        return json.dumps(
            {"event": "media", "streamSid": self._stream_sid, "media": {"payload": payload}}
        )

    async def deserialize(self, data: str | bytes) -> Frame | None:
        """Twilio message → frame; malformed input is logged and dropped."""
        message = self.parse(data)
        if message is None:
            return None
        event = message["event"]
        if event == "media":
            return self._audio(message)
        if event == "dtmf":
            return self._dtmf(message)
        if event == "mark":
            return self._echo(message)
        if event == "stop":
            logger.info("Twilio stopped the stream: the caller hung up")
            self.stopped = True
        elif event in ("connected", "start"):
            self._problem(event, f"ignored a second '{event}' message")
        else:
            self._problem("event", f"ignored unknown event {event!r}")
        return None

    def parse(self, data: str | bytes) -> dict | None:
        """Decode one message to a dict with an `event`, or log why it is not one."""
        if len(data) > self._max_message_bytes:
            self._problem(
                "size", f"dropped a {len(data)}-byte message (limit {self._max_message_bytes})"
            )
            return None
        if isinstance(data, bytes):
            self._problem("binary", "dropped a binary message: Twilio sends JSON text")
            return None
        try:
            message = json.loads(data)
        except json.JSONDecodeError as e:
            self._problem("json", f"dropped a message that is not JSON ({e.msg}): {data[:60]!r}")
            return None
        except RecursionError:  # json's C decoder refuses deep nesting this way
            self._problem("json", f"dropped a message nested too deeply: {data[:60]!r}")
            return None
        if not isinstance(message, dict) or not isinstance(message.get("event"), str):
            self._problem("shape", f"dropped a message without an 'event': {data[:60]!r}")
            return None
        return message

    def _audio(self, message: dict) -> MulawAudioFrame | None:
        media = message.get("media")
        payload = media.get("payload") if isinstance(media, dict) else None
        if not isinstance(payload, str):
            self._problem("media", "dropped a 'media' message without media.payload")
            return None
        try:
            ulaw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            self._problem("base64", "dropped a 'media' message whose payload is not valid base64")
            return None
        if not ulaw:
            return None
        return MulawAudioFrame(
            audio=ulaw_to_pcm(ulaw), sample_rate=TWILIO_SAMPLE_RATE, num_channels=1, ulaw=ulaw
        )

    def _echo(self, message: dict) -> PlaybackEchoFrame | None:
        mark = message.get("mark")
        name = mark.get("name") if isinstance(mark, dict) else None
        if not isinstance(name, str):
            self._problem("mark", "dropped a 'mark' message without mark.name")
            return None
        if name not in self._marks_out:  # Twilio echoes each mark we send once, and no other
            self._problem("echo", f"dropped an echo of mark {name[:40]!r}, which was not sent")
            return None
        self._marks_out.discard(name)
        return PlaybackEchoFrame(mark=name)

    def _dtmf(self, message: dict) -> InputDTMFFrame | None:
        dtmf = message.get("dtmf")
        digit = dtmf.get("digit") if isinstance(dtmf, dict) else None
        try:
            return InputDTMFFrame(KeypadEntry(digit))
        except ValueError:
            self._problem("dtmf", f"dropped a 'dtmf' message with digit {digit!r}")
            return None

    def _problem(self, kind: str, text: str) -> None:
        self._problems[kind] += 1
        count = self._problems[kind]
        if count <= _LOG_FIRST or count % _LOG_EVERY == 0:
            suffix = f" ({count} so far)" if count > 1 else ""
            logger.warning(f"Twilio message problem: {text}{suffix}")
