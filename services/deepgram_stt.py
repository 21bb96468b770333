"""Deepgram live STT (nova) on its own WebSocket: audio in batches, none lost to a failure."""

import asyncio
import json
from dataclasses import fields
from typing import Any
from urllib.parse import urlencode

from loguru import logger
from pipecat.frames.frames import (
    Frame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.deepgram.stt import DeepgramSTTSettings
from pipecat.services.stt_latency import DEEPGRAM_TTFS_P99
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601
from pipecat.utils.types import is_given

from services.audio_backlog import AudioBacklog
from services.reconnecting_websocket import ReconnectingWebsocket, websocket_url
from services.streaming_stt import StreamingSTTService
from turns.frames import CallerPausedFrame

DEFAULT_BASE_URL = "wss://api.deepgram.com"
KEEPALIVE_SECS = 5.0  # Deepgram closes a socket after 10 s with neither audio nor a message
FINALIZE = json.dumps({"type": "Finalize"})
KEEPALIVE = json.dumps({"type": "KeepAlive"})


class DeepgramNovaSTTService(StreamingSTTService):
    """Deepgram's live transcription (`/v1/listen`) for a phone call, on a socket of its own.

    The socket opens in the background (the pipeline and its greeting do not wait for the
    handshake) and reopens when it fails. Audio collects in one buffer, goes out in batches,
    and stays kept until a final result covers it, so a failed socket loses none:

    | in                           | socket         | out                                     |
    |------------------------------|----------------|-----------------------------------------|
    | InputAudioRawFrame           | open           | passes; the buffer sent once it holds   |
    |                              |                | `batch_secs` (`quiet_batch_secs` while  |
    |                              |                | the VAD says the caller is quiet)       |
    | InputAudioRawFrame           | opening / down | passes; kept (the newest                |
    |                              |                | `max_buffer_secs`)                      |
    | VADUserStartedSpeakingFrame  | any            | passes; speech from ~1 s before it kept |
    |                              |                | until transcribed; the buffer sent      |
    | VADUserStoppedSpeakingFrame  | open           | passes; the buffer sent, then Finalize  |
    | VADUserStoppedSpeakingFrame  | opening / down | passes; Finalize once the buffer is     |
    |                              |                | sent                                    |
    | CallerPausedFrame            | any            | as VADUserStoppedSpeakingFrame          |
    | (interim Results)            | open           | InterimTranscriptionFrame               |
    | (final Results)              | open           | TranscriptionFrame (`finalized` when it |
    |                              |                | answers a Finalize)                     |
    | (the socket fails)           | down           | untranscribed speech kept again (not    |
    |                              |                | the silence before it), an unanswered   |
    |                              |                | Finalize sent again after it            |
    | (the key is refused: 401)    | -              | ErrorFrame ↑ (AUTHENTICATION); no retry |
    | EndFrame / CancelFrame       | open           | passes; CloseStream, the socket closed  |

    The turn's last audio always goes out with its Finalize, so batching delays interim
    results (by up to `batch_secs`), never the final transcript. A quiet line's batches (4
    messages a second at 0.25 s, not 10: the most Deepgram recommends a message to hold) end
    at the VAD's start, which comes ~0.2 s into the speech: what they kept goes out then. A
    socket that had been up `stable_secs` reopens at once; one that fails sooner waits out a
    backoff. KeepAlive goes out after `keepalive_secs` with nothing sent.
    """

    Settings = DeepgramSTTSettings

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        sample_rate: int | None = None,
        settings: DeepgramSTTSettings | None = None,
        batch_secs: float = 0.1,
        quiet_batch_secs: float = 0.25,
        max_buffer_secs: float = 10.0,
        stable_secs: float = 5.0,
        keepalive_secs: float = KEEPALIVE_SECS,
        ttfs_p99_latency: float | None = DEEPGRAM_TTFS_P99,
        **kwargs,
    ):
        """Transcribe linear16 mono at `sample_rate` (default: the pipeline's) with `settings`.

        Args:
            api_key: The Deepgram API key.
            base_url: Deepgram's WebSocket base URL (a stand-in's in tests).
            sample_rate: The audio's rate in Hz; None: the pipeline's input rate.
            settings: Model, language, keyterms… (pipecat's `DeepgramSTTService.Settings`);
                unset fields take Deepgram's defaults for a voice agent.
            batch_secs: Audio sent per message.
            quiet_batch_secs: Audio sent per message while the VAD says the caller is quiet.
            max_buffer_secs: Audio kept at most while the socket is down or untranscribed.
            stable_secs: A socket up this long that fails is reopened without a backoff.
            keepalive_secs: With nothing sent for this long, KeepAlive is sent.
            ttfs_p99_latency: Speech end to final transcript, p99, for turn strategies.
            **kwargs: For `STTService`.
        """
        if not api_key:
            raise ValueError("DeepgramNovaSTTService needs an api_key (DEEPGRAM_API_KEY)")
        store = _default_settings()
        if settings is not None:
            store.apply_update(settings)
        super().__init__(
            sample_rate=sample_rate, ttfs_p99_latency=ttfs_p99_latency, settings=store, **kwargs
        )
        self.listen_url = f"{websocket_url(base_url, name='base_url')}/v1/listen"
        self._backlog = AudioBacklog(
            f"{self}",
            batch_secs=batch_secs,
            max_secs=max_buffer_secs,
            quiet_batch_secs=quiet_batch_secs,
        )
        self._sending = asyncio.Lock()  # audio and a reconnect both change the backlog
        self._finalize_due = False  # a Finalize to send once the buffer is sent
        self._finalize_unanswered = False  # a Finalize sent, its final result not yet back
        self._socket = ReconnectingWebsocket(
            self,
            provider="Deepgram",
            url=lambda: self.url,
            headers={"Authorization": f"Token {api_key}"},
            on_open=self._send_kept,
            on_message=self._on_message,
            on_close=self._keep_unconfirmed,
            on_idle=self._keep_alive,
            idle_secs=keepalive_secs,
            stable_secs=stable_secs,
        )

    def can_generate_metrics(self) -> bool:
        """TTFB (speech end to final transcript) and usage metrics are reported."""
        return True

    @property
    def url(self) -> str:
        """The URL the next connection opens: `listen_url` with the current settings."""
        return f"{self.listen_url}?{urlencode(_query(self.settings, self.sample_rate), doseq=True)}"

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """End each turn, and each pause in it, with a Finalize after its last audio."""
        await super().process_frame(frame, direction)
        if isinstance(frame, (VADUserStoppedSpeakingFrame, CallerPausedFrame)):
            self._finalize_due = True
            await self._send_kept()

    async def _send_kept(self) -> None:
        """Send all the audio kept, then the Finalize due, if any."""
        async with self._sending:
            if not self._socket.is_open:
                return
            try:
                await self._backlog.drain(self.sample_rate, self._socket.send)
                if self._finalize_due:
                    self.request_finalize()
                    await self._socket.send(FINALIZE)
                    self._finalize_due, self._finalize_unanswered = False, True
            except ConnectionError as e:  # the socket's task reconnects; the audio stays kept
                logger.warning(f"{self}: sending to Deepgram failed: {e}")

    async def _keep_unconfirmed(self) -> None:
        """The socket is gone: its untranscribed audio and Finalize go first on the next."""
        async with self._sending:
            self._backlog.requeue(self.sample_rate)
            self._finalize_due |= self._finalize_unanswered
            self._finalize_unanswered = False

    async def _keep_alive(self) -> None:
        try:
            await self._socket.send(KEEPALIVE)
        except ConnectionError as e:
            logger.debug(f"{self}: KeepAlive not sent: {e}")

    async def _on_message(self, message: str | bytes) -> None:
        try:
            results = json.loads(message)
            if not isinstance(results, dict) or results.get("type") != "Results":
                return  # Metadata, SpeechStarted, UtteranceEnd: not used here
            alternative = results["channel"]["alternatives"][0]
            transcript = alternative["transcript"]
            until = float(results["start"]) + float(results["duration"])
        except (ValueError, KeyError, IndexError, TypeError) as e:
            logger.warning(f"{self}: ignoring a Deepgram message that is not valid Results: {e!r}")
            return
        language = _language(alternative.get("languages"))
        if not results.get("is_final"):
            if transcript:
                frame = InterimTranscriptionFrame(
                    transcript, "", time_now_iso8601(), language, result=results
                )
                await self.push_frame(frame)
            return
        self._backlog.confirm(until, self.sample_rate)  # that audio need not be sent again
        if results.get("from_finalize"):
            self._finalize_unanswered = False
            self.confirm_finalize()  # the transcript below is the turn's final one
        if transcript:
            await self.emit_stt_usage_metrics()
            frame = TranscriptionFrame(transcript, "", time_now_iso8601(), language, result=results)
            await self.push_frame(frame)
        elif results.get("from_finalize"):
            await self.stop_ttfb_metrics()  # the words came in an earlier final result


def _default_settings() -> DeepgramSTTSettings:
    """The defaults pipecat's `DeepgramSTTService` starts from, every field given."""
    return DeepgramSTTSettings(
        model="nova-3-general",
        language=Language.EN,
        detect_entities=False,
        diarize=False,
        dictation=False,
        endpointing=None,
        interim_results=True,
        keyterm=None,
        keywords=None,
        numerals=False,
        profanity_filter=None,
        punctuate=True,
        redact=None,
        replace=None,
        search=None,
        smart_format=False,
        utterance_end_ms=None,
        version=None,
    )


def _query(settings: Any, sample_rate: int) -> list[tuple[str, Any]]:
    """The `/v1/listen` query: what pipecat's Deepgram SDK client sends for the same settings."""
    pairs: list[tuple[str, Any]] = [
        ("model", settings.model),
        ("encoding", "linear16"),
        ("sample_rate", sample_rate),
        ("channels", 1),
        ("multichannel", "false"),
    ]
    if settings.language is not None:
        pairs.append(("language", str(settings.language)))
    named = {f.name: getattr(settings, f.name) for f in fields(settings)}
    named = {k: v for k, v in named.items() if k not in ("model", "language", "extra")}
    for name, value in [*named.items(), *settings.extra.items()]:
        if name.startswith("_") or value is None or not is_given(value):
            continue
        pairs.append((name, str(value).lower() if isinstance(value, bool) else value))
    return pairs


def _language(codes: list[str] | None) -> Language | None:
    """The language Deepgram detected, if it says (with `detect_language`)."""
    if not codes:
        return None
    try:
        return Language(codes[0])
    except ValueError:
        return None
