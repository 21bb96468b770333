"""Deepgram live STT that keeps the caller's audio while its WebSocket opens or reopens."""

from collections import deque
from collections.abc import AsyncGenerator

from deepgram.listen.v1.types import ListenV1Finalize
from loguru import logger
from pipecat.frames.frames import Frame, VADUserStoppedSpeakingFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.stt_service import STTService


class BufferedDeepgramSTTService(DeepgramSTTService):
    """`DeepgramSTTService` that loses no early audio and does not hold up the call's start.

    Stock pipecat waits for the Deepgram handshake before the pipeline starts (delaying the
    greeting) and drops audio whenever the socket is down (e.g. while it reconnects). Here
    the socket opens in the background and audio is held until it is up:

    | in                                   | Deepgram socket | out                          |
    |--------------------------------------|-----------------|------------------------------|
    | InputAudioRawFrame                   | opening / down  | held (up to `max_buffer_secs`) |
    | InputAudioRawFrame                   | up              | held audio, then this audio  |
    | VADUserStoppedSpeakingFrame          | opening / down  | `Finalize` sent after flush  |
    """

    def __init__(self, *, max_buffer_secs: float = 10.0, **kwargs):
        """Like `DeepgramSTTService`, holding at most `max_buffer_secs` of audio while down."""
        super().__init__(**kwargs)
        self._max_buffer_secs = max_buffer_secs
        self._held: deque[bytes] = deque()
        self._held_bytes = 0
        self._finalize_after_flush = False
        self._overflowed = False

    async def setup(self, setup: FrameProcessorSetup):
        """Start connecting without waiting for the handshake."""
        await STTService.setup(self, setup)
        self._connection_task = self.create_task(self._connection_handler())

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        """Send the audio, after anything held; hold it while the socket is down."""
        if not self._connection:
            self._hold(audio)
            yield None
            return
        if self._held:
            await self._flush_held()
        async for frame in super().run_stt(audio):
            yield frame

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Remember a Finalize the socket could not take yet."""
        if isinstance(frame, VADUserStoppedSpeakingFrame) and not self._connection:
            self._finalize_after_flush = True
        await super().process_frame(frame, direction)

    def _hold(self, audio: bytes) -> None:
        self._held.append(audio)
        self._held_bytes += len(audio)
        limit = int(self._max_buffer_secs * self.sample_rate * 2)
        while self._held_bytes > limit:
            self._held_bytes -= len(self._held.popleft())
            if not self._overflowed:
                logger.warning(f"{self}: Deepgram still not connected; dropping the oldest audio")
                self._overflowed = True

    async def _flush_held(self) -> None:
        held_ms = self._held_bytes / 2 / self.sample_rate * 1000
        logger.debug(f"{self}: sending {held_ms:.0f} ms of audio held while connecting")
        connection = self._connection
        while self._held and connection:
            await connection.send_media(self._held.popleft())
        self._held.clear()
        self._held_bytes = 0
        if self._finalize_after_flush and connection:
            self._finalize_after_flush = False
            self.request_finalize()
            await connection.send_finalize(ListenV1Finalize(type="Finalize"))
