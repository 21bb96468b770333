"""Deepgram live STT that sends audio in batches and loses none of it when its socket fails."""

import time
from collections.abc import AsyncGenerator

from deepgram.listen.v1.types import ListenV1Finalize, ListenV1Results
from loguru import logger
from pipecat.frames.frames import (
    Frame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.stt_service import STTService

from services.audio_backlog import AudioBacklog


class BufferedDeepgramSTTService(DeepgramSTTService):
    """`DeepgramSTTService` that batches audio, loses none, and does not hold up the start.

    Stock pipecat sends every 20 ms packet as its own message (a socket write each, a tenth
    of a call's CPU), waits for the Deepgram handshake before the pipeline starts (delaying
    the greeting), drops audio whenever the socket is down, and loses the audio in flight
    (the utterance being recognized) when the socket fails. Here audio collects in one
    buffer, and audio sent stays kept until a final result covers it:

    | in                          | Deepgram socket | out                                    |
    |-----------------------------|-----------------|----------------------------------------|
    | InputAudioRawFrame          | up              | the buffer, once it holds `batch_secs` |
    | InputAudioRawFrame          | opening / down  | kept (up to `max_buffer_secs`)         |
    | VADUserStartedSpeakingFrame | any             | passes; speech from ~1 s before it is  |
    |                             |                 | kept until transcribed                 |
    | VADUserStoppedSpeakingFrame | up              | the buffer, then `Finalize`            |
    | VADUserStoppedSpeakingFrame | opening / down  | `Finalize` once the buffer is sent     |
    | (the socket fails)          | down            | speech not yet transcribed kept again  |
    |                             |                 | (the silence before it is not), a      |
    |                             |                 | stable socket reopened at once         |

    The turn's last audio always goes out with its `Finalize`, so batching delays only
    interim results (by up to `batch_secs`), never the final transcript.
    """

    def __init__(
        self,
        *,
        batch_secs: float = 0.1,
        max_buffer_secs: float = 10.0,
        stable_secs: float = 5.0,
        **kwargs,
    ):
        """Like `DeepgramSTTService`; send `batch_secs` at a time, keep `max_buffer_secs`.

        A socket that fails after `stable_secs` up is reopened at once; one that fails
        sooner is retried with pipecat's backoff (which gives up after a few in a row).
        """
        self._live: object | None = None  # the open Deepgram socket (see `_connection`)
        self._live_since = 0.0
        super().__init__(**kwargs)
        self._backlog = AudioBacklog(f"{self}", batch_secs=batch_secs, max_secs=max_buffer_secs)
        self._stable_secs = stable_secs
        self._finalize_after_send = False
        self._finalize_unanswered = False  # a Finalize sent, its final result not yet back

    @property
    def _connection(self):
        return self._live

    @_connection.setter
    def _connection(self, connection) -> None:
        # pipecat sets this when its socket opens and clears it when the socket closes.
        if connection is None and self._live is not None:
            self._backlog.requeue(self.sample_rate)
            self._finalize_after_send |= self._finalize_unanswered
            self._finalize_unanswered = False
        elif connection is not None:
            self._live_since = time.monotonic()
        self._live = connection

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
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._backlog.speech_started(self.sample_rate)
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._backlog.speech_stopped()
            if self._connection:
                await self._send_buffer()
                self._finalize_unanswered = True  # pipecat sends it just below
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
                self._finalize_unanswered = True
        except Exception as e:  # what is not sent stays buffered for the next connection
            logger.warning(f"{self}: sending to Deepgram failed, reconnecting: {e}")
            self._connection = None

    async def _on_message(self, message):
        """A final result confirms the audio it covers: it need not be sent again."""
        if isinstance(message, ListenV1Results) and message.is_final:
            self._backlog.confirm(message.start + message.duration, self.sample_rate)
            if message.from_finalize:
                self._finalize_unanswered = False
        await super()._on_message(message)

    async def _on_error(self, error):
        """The socket failed mid-stream: reopen it now if it had been stable.

        pipecat waits at least 4 s before any retry; the caller would wait that long for
        an answer. Sockets that fail quickly still go through pipecat's backoff.
        """
        up_for = time.monotonic() - self._live_since
        await super()._on_error(error)
        if up_for >= self._stable_secs:
            self.create_task(self._reconnect_at_once(), f"{self}::reconnect")

    async def _reconnect_at_once(self) -> None:
        logger.info(f"{self}: reconnecting to Deepgram at once")
        self._connection = None  # the socket is dead: nothing to close on it
        await self._disconnect()  # ends pipecat's handler, waiting out its backoff
        await self._connect()
