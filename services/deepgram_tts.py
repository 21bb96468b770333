"""Deepgram WebSocket TTS that marks where each sentence's audio ends and starts at once."""

import asyncio
import json
from collections import deque
from collections.abc import AsyncGenerator

from loguru import logger
from pipecat.frames.frames import Frame, TTSStoppedFrame
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.services.deepgram.tts import DeepgramTTSService
from pipecat.services.tts_service import WebsocketTTSService
from pipecat.utils.tracing.service_decorators import traced_tts
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from telephony.frames import SentenceEndFrame

# A dropped socket is retried at once, then after 1 s and 2 s (pipecat waits 4 s and more).
RECONNECT_MIN_WAIT_SECS = 1.0
RECONNECT_MAX_WAIT_SECS = 4.0


class SentenceDeepgramTTSService(DeepgramTTSService):
    """`DeepgramTTSService` that emits a `SentenceEndFrame` after each sentence's audio.

    Deepgram's audio stream carries no boundaries, and pipecat releases each sentence's text
    when it is sent, not when it is heard. Flushing after every sentence makes Deepgram answer
    `Flushed` right after that sentence's audio, which becomes a boundary frame in order with
    the audio; only the reply's own final flush ends the TTS context.

    | in (from the LLM)      | out (in order)                                          |
    |------------------------|---------------------------------------------------------|
    | sentence 1, sentence 2 | TTSStarted, audio…, SentenceAudioEnd(1), audio…,        |
    | end of reply           |   SentenceAudioEnd(2), TTSStopped                       |

    Stock pipecat also opens the WebSocket in `setup`, so no call starts (and no cached
    greeting plays) until Deepgram's handshake is done; here it opens in the background and
    the first sentence waits for it instead.

    A connection that drops mid-reply loses, at Deepgram, every sentence not yet `Flushed`.
    Stock pipecat reconnects but ends the reply's audio context, so the rest of the reply is
    never spoken while its text is already in the LLM context. Here the reply's context stays
    open and, on the new connection, each unfinished sentence is spoken again in order: the
    one whose audio was cut from its start (the caller hears its fragment, then all of it),
    then those sent after it. Sentences that arrive meanwhile wait for the new connection.
    """

    def __init__(self, **kwargs):
        """Same arguments as `DeepgramTTSService`."""
        super().__init__(**kwargs)
        self._reconnect_backoff_min_wait = RECONNECT_MIN_WAIT_SECS
        self._reconnect_backoff_max_wait = RECONNECT_MAX_WAIT_SECS
        # One entry per Flush not yet answered, in order: the sentence it ends, or None for a
        # reply's end. After a drop these are what the new connection must say again.
        self._flushes: deque[str | None] = deque()
        self._swallow_remove = False
        self._connecting: asyncio.Task | None = None
        self._sending = asyncio.Lock()  # keeps resent sentences ahead of new ones
        self._up = False  # the socket is open and has been sent every entry of _flushes

    async def setup(self, setup: FrameProcessorSetup):
        """Start connecting without waiting for the handshake."""
        await super(DeepgramTTSService, self).setup(setup)
        self._connecting = self.create_task(self._connect(), name="deepgram-tts-connect")

    @traced_tts
    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        """Speak the sentence (once connected), then flush so its end shows in the audio."""
        if self._connecting:
            connecting, self._connecting = self._connecting, None
            await connecting
        async with self._sending:
            self._flushes.append(text)
            if self._up:
                await self._send({"type": "Speak", "text": text}, {"type": "Flush"})
        await self._connect_if_abandoned()
        yield None

    async def flush_audio(self, context_id: str | None = None):
        """End of the reply: its Flushed closes the context."""
        async with self._sending:
            self._flushes.append(None)
            if self._up:
                await self._send({"type": "Flush"})

    async def append_to_audio_context(self, context_id, frame):
        """Turn a sentence's `Flushed` into a boundary instead of the end of the context."""
        if isinstance(frame, TTSStoppedFrame) and self._flushes:
            sentence = self._flushes.popleft()
            if sentence is not None:
                self._swallow_remove = True
                frame = SentenceEndFrame(text=sentence)
        await super().append_to_audio_context(context_id, frame)

    async def remove_audio_context(self, context_id):
        """Keep the context open after a sentence boundary."""
        if self._swallow_remove:
            self._swallow_remove = False
            return
        await super().remove_audio_context(context_id)

    async def on_audio_context_interrupted(self, context_id: str):
        """Forget pending flushes: the interruption clears them at Deepgram too."""
        async with self._sending:  # a resend under way must not go on after the Clear
            self._flushes.clear()
            await super().on_audio_context_interrupted(context_id)

    async def _send(self, *messages: dict) -> None:
        """Send on the socket; if it is gone, what `_flushes` holds is resent on reconnecting."""
        try:
            for message in messages:
                await self._get_websocket().send(json.dumps(message))
        except ConnectionClosed as e:
            self._up = False
            logger.warning(f"{self}: Deepgram TTS connection lost while sending ({e})")

    async def _connect_websocket(self):
        """Connect; on a new connection after a drop, say again what was not finished."""
        await super()._connect_websocket()
        if not self._websocket or self._up:
            return
        async with self._sending:
            self._up = True
            if unfinished := sum(1 for sentence in self._flushes if sentence):
                logger.warning(f"{self}: speaking again {unfinished} unfinished sentence(s)")
            for sentence in list(self._flushes):
                speak = [{"type": "Speak", "text": sentence}] if sentence else []
                await self._send(*speak, {"type": "Flush"})

    async def _connect_if_abandoned(self) -> None:
        """Connect if the socket is down and nothing is reconnecting it."""
        if self._up or (self._receive_task and not self._receive_task.done()):
            return
        self._receive_task = None  # its loop ended (or never began): start another
        await self._connect()

    async def _receive_messages(self):
        """Receive until the connection ends; nothing more can be sent on it after that."""
        try:
            await super()._receive_messages()
        finally:
            self._up = False

    async def _maybe_try_reconnect(self, error_message, report_error, error=None) -> bool:
        """Reconnect after a drop, holding the reply's audio context open meanwhile."""
        if self._disconnecting:
            return await super()._maybe_try_reconnect(error_message, report_error, error)
        self._up = False
        unfinished = sum(1 for sentence in self._flushes if sentence)
        logger.warning(f"{self}: Deepgram TTS connection lost, {unfinished} sentence(s) unfinished")
        holding = self.create_task(self._hold_audio_context(), name="deepgram-tts-hold-context")
        try:
            reconnected = await super()._maybe_try_reconnect(error_message, report_error, error)
        finally:
            await self.cancel_task(holding)
        if not reconnected and self._flushes:
            logger.error(f"{self}: Deepgram TTS did not come back; {unfinished} sentence(s) unsaid")
            self._flushes.clear()
            await self._close_connection_contexts()
        return reconnected

    async def _hold_audio_context(self) -> None:
        """Keep the playing context from timing out (3 s without audio) while reconnecting."""
        while True:
            context_id = self.get_active_audio_context_id()
            if context_id:
                self._refresh_audio_context(context_id)
            await asyncio.sleep(1.0)

    async def _reconnect_websocket(self, attempt_number: int) -> bool:
        # WebsocketTTSService ends every audio context here; this one resumes them instead.
        return await super(WebsocketTTSService, self)._reconnect_websocket(attempt_number)

    async def _disconnect_websocket(self):
        """Close the socket; one that already dropped has nothing to close (and no error)."""
        if self._websocket and self._websocket.state is State.CLOSED:
            self._websocket = None
        await super()._disconnect_websocket()

    async def _disconnect(self):
        """Leaving on purpose: nothing pending is to be said on a later connection."""
        self._up = False
        await super()._disconnect()
        self._flushes.clear()
