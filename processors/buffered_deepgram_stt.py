"""Deepgram live STT that sends audio in batches and keeps it while its WebSocket is down."""

from collections.abc import AsyncGenerator

from deepgram.listen.v1.types import ListenV1Finalize
from loguru import logger
from pipecat.frames.frames import Frame, VADUserStoppedSpeakingFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.stt_service import STTService

from telephony.audio_backlog import AudioBacklog


class BufferedDeepgramSTTService(DeepgramSTTService):
    """`DeepgramSTTService` that batches audio, loses none, and does not hold up the start.

    Stock pipecat sends every 20 ms packet as its own message (a socket write each, a tenth
    of a call's CPU), waits for the Deepgram handshake before the pipeline starts (delaying
    the greeting), and drops audio whenever the socket is down (e.g. while it reconnects).
    Here audio collects in one buffer:

    | in                          | Deepgram socket | out                                    |
    |-----------------------------|-----------------|----------------------------------------|
    | InputAudioRawFrame          | up              | the buffer, once it holds `batch_secs` |
    | InputAudioRawFrame          | opening / down  | kept (up to `max_buffer_secs`)         |
    | VADUserStoppedSpeakingFrame | up              | the buffer, then `Finalize`            |
    | VADUserStoppedSpeakingFrame | opening / down  | `Finalize` once the buffer is sent     |

    The turn's last audio always goes out with its `Finalize`, so batching delays only
    interim results (by up to `batch_secs`), never the final transcript.
    """

    def __init__(self, *, batch_secs: float = 0.1, max_buffer_secs: float = 10.0, **kwargs):
        """Like `DeepgramSTTService`; send `batch_secs` at a time, keep `max_buffer_secs`."""
        super().__init__(**kwargs)
        self._backlog = AudioBacklog(f"{self}", batch_secs=batch_secs, max_secs=max_buffer_secs)
        self._finalize_after_send = False

    async def setup(self, setup: FrameProcessorSetup):
        """Start connecting without waiting for the handshake."""
        await STTService.setup(self, setup)
        self._connection_task = self.create_task(self._connection_handler())

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        """Buffer the audio; send the buffer once a batch is full and the socket is up."""
        if self._backlog.add(audio, self.sample_rate, connected=bool(self._connection)):
            await self._send_buffer()
        yield None

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Send the turn's last audio before the `Finalize` that ends it."""
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            if self._connection:
                await self._send_buffer()
            else:
                self._finalize_after_send = True
        await super().process_frame(frame, direction)

    async def _send_buffer(self) -> None:
        connection = self._connection
        try:
            await self._backlog.drain(self.sample_rate, connection.send_media)
            if self._finalize_after_send:
                self._finalize_after_send = False
                self.request_finalize()
                await connection.send_finalize(ListenV1Finalize(type="Finalize"))
        except Exception as e:  # what is not sent stays buffered for the next connection
            logger.warning(f"{self}: sending to Deepgram failed, reconnecting: {e}")
            self._connection = None
