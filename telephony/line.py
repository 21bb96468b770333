"""The phone line a Twilio call's transport shares between its input and output: one socket."""

from collections.abc import AsyncIterator

from fastapi import WebSocket
from loguru import logger
from pipecat.transports.base_transport import TransportParams
from pydantic import Field
from starlette.websockets import WebSocketState

from telephony.media_streams import SAMPLE_RATE, MediaStreamMessages

RESUME_AFTER_SECS = 0.3
PLAYOUT_LEAD_SECS = 0.1
AUDIO_IN_FRAME_SECS = 0.04


class TwilioParams(TransportParams):
    """How the transport plays the bot on a phone line (8 kHz mono μ-law, both ways).

    Parameters:
        playout_lead_secs: audio kept queued at Twilio ahead of what the phone plays, against
            gaps when the server is busy; a pause or a barge-in clears it at once anyway.
        pause_on_speech: stop the bot's audio at the phone as soon as the caller speaks over
            it; a barge-in (an interruption) then cuts it there, anything else resumes it.
        resume_after_secs: after the caller falls quiet, how long a pause waits for more speech
            (words are often split into VAD segments ~0.1 s apart) before it resumes.
        audio_in_frame_secs: the caller's audio goes into the pipeline in frames this long
            (Twilio's 20 ms packets, joined): every frame costs each processor, observer and
            the STT's socket the same whatever its length, and 40 ms halves that for at most
            20 ms more before the VAD and the STT hear a sound.
    """

    audio_in_enabled: bool = True
    audio_in_sample_rate: int | None = SAMPLE_RATE
    audio_out_enabled: bool = True
    audio_out_sample_rate: int | None = SAMPLE_RATE
    audio_out_end_silence_secs: int = 0  # the end waits for Twilio to play the audio out
    playout_lead_secs: float = Field(default=PLAYOUT_LEAD_SECS, ge=0.0)
    pause_on_speech: bool = True
    resume_after_secs: float = Field(default=RESUME_AFTER_SECS, ge=0.0)
    audio_in_frame_secs: float = Field(default=AUDIO_IN_FRAME_SECS, ge=0.02, le=0.2)


class PhoneLine:
    """One call's Media Stream socket, after its `start` message, and the stream's messages."""

    def __init__(self, websocket: WebSocket, stream_sid: str):
        """The line of `websocket` (accepted, past `start`), whose stream is `stream_sid`."""
        self.messages = MediaStreamMessages(stream_sid)
        self.caller_hung_up = False
        self._websocket = websocket
        self._closing = False  # we hung up, or the stream has ended
        self._broken = False  # a send failed: the caller has gone (the input will read so)

    @property
    def open(self) -> bool:
        """Whether messages can still be sent on the line."""
        return (
            not (self._closing or self._broken)
            and self._websocket.client_state == WebSocketState.CONNECTED
        )

    async def receive(self) -> AsyncIterator[str | bytes]:
        """The messages Twilio sends, until the socket closes."""
        while True:
            message = await self._websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("text")
            yield data if data is not None else (message.get("bytes") or b"")

    async def send(self, message: str) -> bool:
        """Send one message; False if the line is closed (the caller has gone)."""
        if not self.open:
            return False
        try:
            await self._websocket.send_text(message)
            return True
        except Exception as e:  # the peer went away mid-send: the input notices the hang-up
            logger.debug(f"{self}: sending failed, the line is closed ({e})")
            self._broken = True  # not `_closing`: then the hang-up would pass for ours
            return False

    async def close(self) -> None:
        """Hang up our side of the stream (idempotent)."""
        if self._closing:
            return
        self._closing = True
        if self._websocket.client_state == WebSocketState.CONNECTED:
            try:
                await self._websocket.close()
            except Exception as e:  # already closed by the peer
                logger.debug(f"{self}: closing the socket: {e}")

    def ended(self) -> bool:
        """The stream ended (Twilio's `stop`, or the socket closed); whether the caller did it."""
        if not self._closing:
            self.caller_hung_up = True
        self._closing = True
        return self.caller_hung_up
