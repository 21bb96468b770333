"""An STT service on a WebSocket of its own that keeps the caller's audio until transcribed."""

import json
from collections.abc import AsyncGenerator

from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.services.stt_service import STTService

from services.audio_backlog import AudioBacklog
from services.reconnecting_websocket import ReconnectingWebsocket

CLOSE_STREAM = json.dumps({"type": "CloseStream"})


class StreamingSTTService(STTService):
    """What Deepgram's nova and Flux services share: a socket, a backlog, their lifecycle.

    A subclass sets `_socket` (a `ReconnectingWebsocket`) and `_backlog` (an `AudioBacklog`)
    in its constructor and sends the backlog in `_send_kept`.

    | in                                  | what it does                                      |
    |-------------------------------------|---------------------------------------------------|
    | (setup)                             | the socket starts opening; nothing waits for it   |
    | InputAudioRawFrame                  | kept; the backlog sent once a batch is full and   |
    |                                     | the socket is open                                |
    | VADUserStarted/Stopped ↓            | the backlog notes the speech (a reconnect re-sends |
    |                                     | speech, not the silence before it); the start     |
    |                                     | sends what is kept                                |
    | EndFrame / CancelFrame              | CloseStream, the socket closed                    |
    """

    _socket: ReconnectingWebsocket
    _backlog: AudioBacklog

    async def setup(self, setup: FrameProcessorSetup):
        """Start connecting, without waiting for the handshake."""
        await super().setup(setup)
        self._socket.start()

    async def stop(self, frame: EndFrame):
        """Say CloseStream and close the socket."""
        await super().stop(frame)
        await self._socket.stop(last_message=CLOSE_STREAM)

    async def cancel(self, frame: CancelFrame):
        """Say CloseStream and close the socket."""
        await super().cancel(frame)
        await self._socket.stop(last_message=CLOSE_STREAM)

    async def cleanup(self):
        """Close the socket if it is still open."""
        await super().cleanup()
        await self._socket.stop()

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        """Keep the audio; send the backlog once a batch is full and the socket is open."""
        if self._backlog.add(audio, self.sample_rate, connected=self._socket.is_open):
            await self._send_kept()
        yield None

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Note the caller's speech in the backlog, then process the frame as pipecat does."""
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._backlog.speech_started(self.sample_rate)
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._backlog.speech_stopped()
        await super().process_frame(frame, direction)
        if isinstance(frame, VADUserStartedSpeakingFrame) and self._backlog.pcm:
            await self._send_kept()  # the speech's start may wait in a quiet batch

    async def _send_kept(self) -> None:
        """Send what the backlog holds (the subclass's wire format)."""
        raise NotImplementedError
