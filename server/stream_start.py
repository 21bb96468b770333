"""Read the `connected` and `start` messages that open a Twilio Media Stream."""

import asyncio
import re
from dataclasses import dataclass, field

from fastapi import WebSocket, WebSocketDisconnect
from loguru import logger

from telephony.media_streams import MediaStreamMessages

START_TIMEOUT_SECS = 10.0
# Twilio SIDs: two letters and 32 hex digits. The call SID goes into REST URLs unquoted.
_SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")


class StreamStartError(Exception):
    """The stream did not open the way Twilio opens one."""


@dataclass(frozen=True)
class StreamStart:
    """What Twilio's `start` message tells us about the call."""

    stream_sid: str
    call_sid: str
    account_sid: str
    parameters: dict[str, str] = field(default_factory=dict)


async def read_stream_start(websocket: WebSocket) -> StreamStart:
    """Wait for `start`, skipping `connected`; media that comes first is dropped with a warning."""
    try:
        async with asyncio.timeout(START_TIMEOUT_SECS):
            return await _read_until_start(websocket)
    except TimeoutError:
        raise StreamStartError(f"no 'start' message within {START_TIMEOUT_SECS:.0f} s") from None
    except WebSocketDisconnect:
        raise StreamStartError("the caller went away before 'start'") from None


async def _read_until_start(websocket: WebSocket) -> StreamStart:
    parser = MediaStreamMessages(stream_sid="")
    early_media = 0
    while True:
        message = parser.parse(await _receive(websocket))
        if message is None or message["event"] == "connected":
            continue
        if message["event"] == "start":
            if early_media:
                logger.warning(f"dropped {early_media} 'media' message(s) that came before 'start'")
            return _stream_start(message)
        if message["event"] == "media":
            early_media += 1
        else:
            logger.warning(f"ignored {message['event']!r} before 'start'")


async def _receive(websocket: WebSocket) -> str | bytes:
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    return message.get("text") or message.get("bytes") or b""


def _stream_start(message: dict) -> StreamStart:
    start = message.get("start")
    if not isinstance(start, dict):
        raise StreamStartError("'start' message has no 'start' object")
    media_format = start.get("mediaFormat") or {}
    if not isinstance(media_format, dict) or (
        media_format
        and (
            media_format.get("encoding") != "audio/x-mulaw"
            or media_format.get("sampleRate") != 8000
        )
    ):
        raise StreamStartError(f"unsupported media format {media_format!r:.100}: need 8 kHz μ-law")
    stream_sid = start.get("streamSid") or message.get("streamSid")
    call_sid = start.get("callSid")
    if not (stream_sid and call_sid):
        raise StreamStartError("'start' message lacks streamSid or callSid")
    if not all(isinstance(sid, str) and _SID.fullmatch(sid) for sid in (stream_sid, call_sid)):
        raise StreamStartError(
            f"'start' message has a malformed streamSid or callSid: {stream_sid!r:.40}, "
            f"{call_sid!r:.40}"
        )
    parameters = start.get("customParameters") or {}
    if not isinstance(parameters, dict):
        raise StreamStartError("'start' message has customParameters that are not an object")
    return StreamStart(
        stream_sid=stream_sid,
        call_sid=call_sid,
        account_sid=str(start.get("accountSid", "")),
        parameters={str(k): str(v) for k, v in parameters.items()},
    )
