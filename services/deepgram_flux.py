"""Deepgram Flux STT that sends audio in batches and keeps it while its WebSocket is down."""

import asyncio
import time
from collections.abc import AsyncGenerator

from loguru import logger
from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.services.deepgram.flux.stt import DeepgramFluxSTTService
from pipecat.services.deepgram.flux.stt_base import DeepgramFluxSTTBase

from services.audio_backlog import AudioBacklog
from services.tls import SharedTLSWebsocket


class BufferedFluxSTTService(SharedTLSWebsocket, DeepgramFluxSTTService):
    """`DeepgramFluxSTTService` that batches audio, loses none, and does not hold up the start.

    Stock pipecat waits for the Flux handshake before the pipeline starts (delaying the
    greeting), drops the caller's audio whenever the socket is not open (while it opens,
    while it reconnects), and sends every 20 ms packet as its own message. Here audio
    collects in one buffer:

    | in                 | Flux socket    | out                                    |
    |--------------------|----------------|----------------------------------------|
    | InputAudioRawFrame | open           | the buffer, once it holds `batch_secs` |
    | InputAudioRawFrame | opening / down | kept (up to `max_buffer_secs`)         |
    | (the socket opens) | open           | what was kept                          |

    Flux ends turns on the audio it has heard and no `Finalize` flushes a turn's tail (as
    one does for nova), so a batch can delay an end of turn by up to `batch_secs`: 80 ms here,
    against nova's 100 ms.
    """

    def __init__(self, *, batch_secs: float = 0.08, max_buffer_secs: float = 10.0, **kwargs):
        """Like `DeepgramFluxSTTService`; send `batch_secs` at a time, keep `max_buffer_secs`."""
        super().__init__(**kwargs)
        self._backlog = AudioBacklog(f"{self}", batch_secs=batch_secs, max_secs=max_buffer_secs)
        self._connect_task = None
        self._sending = asyncio.Lock()  # run_stt and a new connection both flush the buffer

    async def setup(self, setup: FrameProcessorSetup):
        """Start connecting without waiting for the handshake."""
        await super(DeepgramFluxSTTBase, self).setup(setup)  # not its `await self._connect()`
        self._connect_task = self.create_task(self._connect())

    async def _disconnect(self):
        """Stop a connection attempt still under way, then disconnect as pipecat does."""
        if self._connect_task:
            task, self._connect_task = self._connect_task, None
            await self.cancel_task(task)
        await super()._disconnect()

    async def _connect_websocket(self):
        """Open the socket as pipecat does, then send what was kept while it was down."""
        await super()._connect_websocket()
        if self._transport_is_active() and self._backlog.pcm:
            await self._send_buffer()

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        """Buffer the audio; send the buffer once a batch is full and the socket is open."""
        connected = self._transport_is_active()
        if self._backlog.add(audio, self.sample_rate, connected=connected):
            await self._send_buffer()
        yield None

    async def _send_buffer(self) -> None:
        try:
            async with self._sending:
                await self._backlog.drain(self.sample_rate, self._send_chunk)
        except Exception as e:  # what is not sent stays buffered; the receive loop reconnects
            logger.warning(f"{self}: sending to Flux failed, keeping the audio: {e}")

    async def _send_chunk(self, chunk: bytes) -> None:
        # What the stock run_stt records for the watchdog that ends dangling turns.
        self._last_stt_time = time.monotonic()
        self._last_audio_chunk_duration = len(chunk) / 2 / self.sample_rate
        await self._transport_send_audio(chunk)
