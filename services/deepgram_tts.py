"""Deepgram Aura text-to-speech over its `/v1/speak` WebSocket, one Flush per sentence."""

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlencode

from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    TTSUpdateSettingsFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.deepgram.tts import DeepgramTTSSettings
from pipecat.services.tts_service import TextAggregationMode, TTSService
from pipecat.utils.context.word_timestamp_tracker import WordTimestamp
from pipecat.utils.errors import classify_http_exception
from pipecat.utils.tracing.service_decorators import traced_tts
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    InvalidStatus,
    WebSocketException,
)

from services.tls import shared_tls
from telephony.frames import SentenceEndFrame

DEFAULT_BASE_URL = "wss://api.deepgram.com"
DEFAULT_VOICE = "aura-2-helena-en"
RECONNECT_WAITS_SECS = (0.0, 1.0, 2.0)  # before each attempt: at once, then after 1 s and 2 s
CONNECT_WITHIN_SECS = 5.0  # a connection not up by then ends the replies waiting for it
# pipecat ends an audio context after this long without audio (3 s by default): here it
# outlasts a reconnection and Deepgram's first audio after it, so the reply stays open.
AUDIO_GAP_SECS = CONNECT_WITHIN_SECS + 3.0
CLOSE_TIMEOUT_SECS = 2.0


@dataclass
class _Flush:
    """A Flush sent (or due) and not answered yet: the end of a sentence, or of a reply."""

    context_id: str
    text: str | None  # the sentence as sent; None for the end of the reply
    shown: bool = False  # its TTSTextFrame is in the audio context
    held: TTSTextFrame | None = None  # its TTSTextFrame, until the audio before it has ended

    def messages(self) -> list[dict]:
        """What to send Deepgram for it."""
        speak = [{"type": "Speak", "text": self.text}] if self.text is not None else []
        return [*speak, {"type": "Flush"}]


class DeepgramAuraTTSService(TTSService):
    """Deepgram Aura speech, with a `SentenceEndFrame` where each sentence's audio ends.

    Deepgram's audio carries no boundaries. Each sentence is sent with its own `Flush`, so
    Deepgram's `Flushed` marks the end of that sentence's audio: it becomes a
    `SentenceEndFrame` in order with the audio, and the reply's own final Flush ends the
    audio context. Each sentence's text is released when the audio before it has ended.

    | in                                  | out (in order)                                  |
    |-------------------------------------|-------------------------------------------------|
    | LLM reply: sentence 1, sentence 2,  | TTSStarted, TTSText(1), audio…, SentenceEnd(1), |
    |   end of reply                      |   TTSText(2), audio…, SentenceEnd(2), TTSStopped|
    | InterruptionFrame                   | Clear to Deepgram; the cut reply's audio still  |
    |                                     |   on its way (until `Cleared`) is dropped       |

    The socket opens in the background, so the pipeline's start never waits for the
    handshake; sentences wait for the socket instead. A connection that drops while
    Flushes are unanswered loses, at Deepgram, every sentence not yet `Flushed`: it is
    reopened at once (then after 1 s and 2 s) with the reply's audio context held open,
    and the new connection is sent again, in order, each unfinished sentence (the cut one
    from its start) and the reply's end; sentences arriving meanwhile wait for it. If no
    connection comes back within 5 s the waiting replies end (TTSStopped) with an error.
    A refusal that pipecat classifies as permanent by its status (400, 401, 403, 404, 422) is
    reported as such and not tried again.
    """

    Settings = DeepgramTTSSettings

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        sample_rate: int | None = None,
        mip_opt_out: bool | None = None,
        settings: DeepgramTTSSettings | None = None,
        **kwargs,
    ):
        """Speak with Aura (linear16 PCM at `sample_rate`, the pipeline's output rate if None).

        Args:
            api_key: Deepgram API key.
            base_url: `ws://` or `wss://` origin of `/v1/speak` (a stand-in's in tests).
            sample_rate: Output sample rate in Hz.
            mip_opt_out: Opt out of Deepgram's Model Improvement Program, if set.
            settings: Voice (the Aura model, e.g. aura-2-thalia-en) and speed.
            **kwargs: `TTSService` arguments, e.g. `stop_frame_timeout_s`.

        Raises:
            ValueError: Without an API key, with a base URL that is not a WebSocket URL,
                or with token aggregation (a Flush per token would cut every word apart).
        """
        if not api_key:
            raise ValueError("DeepgramAuraTTSService needs api_key (DEEPGRAM_API_KEY)")
        if not base_url.startswith(("ws://", "wss://")):
            raise ValueError(f"Deepgram TTS base_url must start ws:// or wss://: {base_url!r}")
        if kwargs.get("text_aggregation_mode") == TextAggregationMode.TOKEN:
            raise ValueError("DeepgramAuraTTSService speaks whole sentences: not TOKEN mode")
        store = DeepgramTTSSettings(model=None, voice=DEFAULT_VOICE, language=None, speed=None)
        if settings is not None:
            store.apply_update(settings)
        store.model = store.voice  # an Aura voice is its model, as metrics report it
        kwargs.setdefault("stop_frame_timeout_s", AUDIO_GAP_SECS)
        super().__init__(
            sample_rate=sample_rate,
            push_start_frame=True,
            push_stop_frames=False,
            append_trailing_space=True,
            settings=store,
            **kwargs,
        )
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._mip_opt_out = mip_opt_out
        self._socket: ClientConnection | None = None
        self._socket_url = ""  # what the socket was opened with
        self._reader: asyncio.Task | None = None
        self._connector: asyncio.Task | None = None
        # Every Flush not answered yet, in order. After a drop they are what the new
        # connection must be sent again: Deepgram forgets what it had not flushed.
        self._pending: deque[_Flush] = deque()
        self._sending = asyncio.Lock()  # keeps `_pending` and what the socket was sent alike
        self._caught_up = False  # the socket is open and has been sent all of `_pending`
        self._lost = False  # a connection was lost with Flushes unanswered
        self._clearing = 0  # Clears sent whose Cleared has not come back
        self._closing = False

    def can_generate_metrics(self) -> bool:
        """TTFB (to the first audio of each reply) and usage metrics."""
        return True

    @property
    def supports_processing_metrics(self) -> bool:
        """No: `run_tts` only sends the text, the audio comes on the socket's reader."""
        return False

    async def start(self, frame: StartFrame):
        """Start connecting, without waiting for the handshake."""
        await super().start(frame)
        self._ensure_connection()

    async def stop(self, frame: EndFrame):
        """Play out what is under way, then say `Close` and close the socket."""
        await super().stop(frame)
        await self._close_connection(graceful=True)

    async def cancel(self, frame: CancelFrame):
        """Close the socket at once."""
        await super().cancel(frame)
        await self._close_connection()

    async def cleanup(self):
        """Close the socket and its tasks, if anything is left open."""
        await super().cleanup()
        await self._close_connection()

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Process as `TTSService` does; a new voice or speed takes a new connection."""
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSUpdateSettingsFrame) and self._socket:
            if self._socket_url != self._url():
                logger.info(f"{self}: Deepgram TTS settings changed, reconnecting")
                await self._socket.close()  # the reader reconnects if anything is pending

    @traced_tts
    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        """Send the sentence and its Flush (now, or when the socket is up); audio comes later."""
        await self.start_tts_usage_metrics(text)
        await self._queue(_Flush(context_id, text))
        yield None

    async def flush_audio(self, context_id: str | None = None):
        """The end of a reply: its Flushed ends the audio context."""
        context_id = context_id or self.get_active_audio_context_id()
        if not context_id:
            return
        if not self.is_usable:
            await self._end_reply(context_id)  # nothing was sent: no Flushed will come
            return
        await self._queue(_Flush(context_id, None))

    async def append_to_audio_context(
        self, context_id: str | None, frame: Frame | WordTimestamp | None
    ):
        """Hold a sentence's TTSTextFrame until the audio of the sentences before it ended."""
        flush = self._pending[-1] if self._pending else None
        if (
            isinstance(frame, TTSTextFrame)
            and flush
            and flush.context_id == context_id
            and flush.text is not None
            and not flush.shown
            and not flush.held
        ):
            # pipecat appends a sentence's text right after its run_tts: the last Flush's.
            if flush is not self._pending[0]:
                flush.held = frame
                return
            flush.shown = True
        await super().append_to_audio_context(context_id, frame)

    async def on_audio_context_interrupted(self, context_id: str):
        """Forget the context's sentences here and, with a `Clear`, at Deepgram."""
        await self.stop_all_metrics()
        async with self._sending:
            kept = deque(f for f in self._pending if f.context_id != context_id)
            dropped = len(self._pending) - len(kept)
            self._pending = kept
            if self._caught_up and (dropped or not kept):
                self._clearing += 1  # before any await: audio until Cleared is the cut one's
                await self._send({"type": "Clear"})
                for flush in list(kept):  # uninterruptible speech the Clear also cleared
                    await self._send(*flush.messages())
        await super().on_audio_context_interrupted(context_id)

    def _url(self) -> str:
        """The `/v1/speak` URL for the current settings."""
        settings = cast(DeepgramTTSSettings, self.settings)
        query: dict[str, object] = {
            "model": settings.voice,
            "encoding": "linear16",  # the audio frames carry PCM
            "sample_rate": self.sample_rate,
        }
        if settings.speed is not None:
            query["speed"] = settings.speed
        if self._mip_opt_out is not None:
            query["mip_opt_out"] = str(self._mip_opt_out).lower()
        return f"{self._base_url}/v1/speak?{urlencode(query)}"

    async def _queue(self, flush: _Flush) -> None:
        """Add a Flush to the pending ones; send it if the socket is up and caught up."""
        async with self._sending:
            self._pending.append(flush)
            if self._caught_up:
                await self._send(*flush.messages())
        self._ensure_connection()

    async def _send(self, *messages: dict) -> None:
        """Send on the socket (holding `_sending`); if it is gone, the reader reconnects."""
        socket = self._socket
        try:
            for message in messages:
                if socket is not None:
                    await socket.send(json.dumps(message))
        except ConnectionClosed as e:
            logger.warning(f"{self}: Deepgram TTS connection lost while sending ({e})")
            socket = None
        if socket is None:
            self._caught_up = False  # the next connection is sent all of `_pending`

    def _ensure_connection(self) -> None:
        """Start connecting unless connected, connecting, closing, or no longer usable."""
        if self._socket or self._closing or not self.is_usable:
            return
        if self._connector and not self._connector.done():
            return
        self._connector = self.create_task(self._connect(), name="deepgram-aura-connect")

    async def _connect(self) -> None:
        """Open a connection, trying again after 1 s and 2 s; give up after 5 s."""
        error: Exception | None = None
        try:
            async with asyncio.timeout(CONNECT_WITHIN_SECS):
                for attempt, wait in enumerate(RECONNECT_WAITS_SECS):
                    await asyncio.sleep(wait)
                    try:
                        socket = await self._open()
                    except (OSError, WebSocketException) as e:
                        error = e
                        if await self._refused_for_good(e):
                            return
                        retry = RECONNECT_WAITS_SECS[attempt + 1 :][:1]
                        again = f"; trying again in {retry[0]:g} s" if retry else ""
                        logger.warning(f"{self}: {_describe(e)}{again}")
                        continue
                    # The last await of this task: a drop seen after it can start another.
                    await self._adopt(socket)
                    return
        except TimeoutError as e:
            error = error or e
        await self._give_up(error)

    async def _open(self) -> ClientConnection:
        """Open the socket (the handshake is the only wait)."""
        url = self._url()
        logger.debug(f"{self}: connecting to Deepgram TTS {url}")
        socket = await connect(
            url,
            additional_headers={"Authorization": f"Token {self._api_key}"},
            ssl=shared_tls() if url.startswith("wss:") else None,
            open_timeout=None,  # `CONNECT_WITHIN_SECS` bounds the attempts
            close_timeout=CLOSE_TIMEOUT_SECS,
        )
        self._socket_url = url
        request_id = socket.response.headers.get("dg-request-id") if socket.response else None
        logger.debug(f"{self}: connected to Deepgram TTS (request {request_id})")
        return socket

    async def _adopt(self, socket: ClientConnection) -> None:
        """Use the new socket: read it, and send it every Flush pending, in order."""
        self._socket = socket  # before any await, so that closing finds it
        self._reader = self.create_task(self._receive(socket), name="deepgram-aura-receive")
        async with self._sending:
            self._caught_up, self._clearing = True, 0
            if self._lost:
                self._lost = False
                unfinished = sum(1 for f in self._pending if f.text is not None)
                logger.warning(f"{self}: speaking again {unfinished} unfinished sentence(s)")
            for flush in list(self._pending):
                await self._send(*flush.messages())

    async def _refused_for_good(self, error: Exception) -> bool:
        """Report a refusal that retrying cannot help (e.g. 401), ending the waiting replies."""
        if not isinstance(error, InvalidStatus) or not classify_http_exception(error).is_permanent:
            return False
        await self.push_error(_describe(error), exception=error)  # costs the service its use
        await self._end_pending()
        return True

    async def _give_up(self, error: Exception | None) -> None:
        """No connection: end the replies waiting for one, so the call goes on."""
        unsaid = sum(1 for f in self._pending if f.text is not None)
        cause = _describe(error) if error else "no connection"
        message = f"Deepgram TTS did not connect within {CONNECT_WITHIN_SECS:g} s ({cause})"
        await self.push_error(f"{message}; {unsaid} sentence(s) unsaid", exception=error)
        await self._end_pending()

    async def _end_pending(self) -> None:
        """End the audio context of every pending Flush; their sentences go unsaid."""
        async with self._sending:
            pending, self._pending = self._pending, deque()
            self._lost = False
        for context_id in dict.fromkeys(f.context_id for f in pending):
            await self._end_reply(context_id)

    async def _end_reply(self, context_id: str) -> None:
        """Close the reply's audio context after the audio it has."""
        if self.audio_context_available(context_id):
            await self.append_to_audio_context(context_id, TTSStoppedFrame(context_id=context_id))
            await self.remove_audio_context(context_id)

    async def _receive(self, socket: ClientConnection) -> None:
        """Handle Deepgram's messages until the socket closes, then reconnect if needed."""
        clean = True
        try:
            async for message in socket:
                if isinstance(message, bytes):
                    await self._on_audio(message)
                else:
                    await self._on_message(message)
        except ConnectionClosedError:
            clean = False
        await self._on_closed(socket, clean)

    async def _on_audio(self, audio: bytes) -> None:
        """Audio belongs to the oldest unanswered Flush."""
        if self._clearing or not self._pending:
            return  # the cut reply's, sent before Deepgram read the Clear
        context_id = self._pending[0].context_id
        frame = TTSAudioRawFrame(audio, self.sample_rate, 1, context_id=context_id)
        await self.append_to_audio_context(context_id, frame)

    async def _on_message(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            logger.warning(f"{self}: Deepgram TTS sent a text message that is not JSON")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "Flushed":
            await self._on_flushed()
        elif kind == "Cleared":
            self._clearing = max(self._clearing - 1, 0)
        elif kind == "Warning":
            description = message.get("description") or message.get("warn_msg")
            logger.warning(f"{self}: Deepgram TTS warning: {description}")
        else:
            logger.debug(f"{self}: Deepgram TTS {kind} message")

    async def _on_flushed(self) -> None:
        """The oldest Flush is answered: its sentence's audio, or its reply, has ended."""
        async with self._sending:
            if self._clearing or not self._pending:
                return  # the answer to a Flush the Clear cleared
            flush = self._pending.popleft()
            if flush.text is None:
                await self._end_reply(flush.context_id)
            else:
                end = SentenceEndFrame(text=flush.text.strip())
                await self.append_to_audio_context(flush.context_id, end)
            head = self._pending[0] if self._pending else None  # its text may go now
            if head and head.held:
                held, head.held, head.shown = head.held, None, True
                await super().append_to_audio_context(head.context_id, held)

    async def _on_closed(self, socket: ClientConnection, clean: bool) -> None:
        """The socket closed: reconnect now if it was cut or Flushes are unanswered."""
        if socket is not self._socket or self._closing:
            return
        async with self._sending:
            self._socket, self._caught_up, self._clearing = None, False, 0
            unfinished = sum(1 for f in self._pending if f.text is not None)
            self._lost = bool(self._pending)
        if clean and not self._pending:
            logger.debug(f"{self}: Deepgram TTS closed the connection; reopening when needed")
            return
        logger.warning(
            f"{self}: Deepgram TTS connection lost, {unfinished} sentence(s) unfinished "
            f"(close code {socket.close_code})"
        )
        self._ensure_connection()

    async def _close_connection(self, *, graceful: bool = False) -> None:
        """Stop the tasks and close the socket (with `Close` first if graceful)."""
        self._closing = True
        for task in (self._connector, self._reader):
            if task:
                await self.cancel_task(task)
        self._connector = self._reader = None
        socket, self._socket = self._socket, None
        self._caught_up = False
        self._pending.clear()
        if socket is None:
            return
        if graceful:
            with contextlib.suppress(ConnectionClosed):
                await socket.send(json.dumps({"type": "Close"}))
        await socket.close()


def _describe(error: Exception) -> str:
    """A connection failure in words: Deepgram's reason for a refusal, with its status."""
    if isinstance(error, InvalidStatus):
        status = error.response.status_code
        reason = error.response.headers.get("dg-error") or error.response.reason_phrase
        return f"Deepgram TTS refused the connection (HTTP {status}): {reason}"
    return f"Deepgram TTS connection failed: {error!r}"
