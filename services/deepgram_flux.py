"""Deepgram Flux STT on its WebSocket: turns by Flux, audio in batches, none lost to a failure."""

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

from loguru import logger
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    EagerTranscriptionFrame,
    InterimTranscriptionFrame,
    ProposedUserStartedSpeakingFrame,
    ProposedUserStoppedSpeakingFrame,
    STTMetadataFrame,
    TranscriptionFrame,
)
from pipecat.services.deepgram.flux.stt_base import (
    DeepgramFluxSTTSettings,
    language_to_deepgram_flux_language,
)
from pipecat.transcriptions.language import Language
from pipecat.turns.user_turn_strategies import ExternalUserTurnStrategies
from pipecat.utils.errors import ErrorCategory
from pipecat.utils.time import time_now_iso8601

from services.audio_backlog import AudioBacklog
from services.reconnecting_websocket import ReconnectingWebsocket, websocket_url
from services.streaming_stt import StreamingSTTService

DEFAULT_URL = "wss://api.deepgram.com/v2/listen"
MULTILINGUAL = "flux-general-multi"
WATCHDOG_SILENCE_SECS = 0.5
# Flux error codes a retry cannot clear (anything else: Flux closes, the socket reopens).
PERMANENT_ERRORS = {"UNPARSABLE_CLIENT_MESSAGE": ErrorCategory.INVALID_REQUEST}


class FluxSTTService(StreamingSTTService):
    """Deepgram Flux (`/v2/listen`) for a phone call, on a socket of its own: Flux ends turns.

    The socket opens in the background (the pipeline and its greeting do not wait for the
    handshake) and reopens when it fails. Audio collects in one buffer, goes out in batches,
    and stays kept until an EndOfTurn covers it, so a failed socket loses none of a turn:

    | in                          | socket         | out                                      |
    |-----------------------------|----------------|------------------------------------------|
    | InputAudioRawFrame          | open           | passes; the buffer sent once it holds    |
    |                             |                | `batch_secs`                             |
    | InputAudioRawFrame          | opening / down | passes; kept (the newest                 |
    |                             |                | `max_buffer_secs`)                       |
    | (the socket opens)          | open           | what was kept                            |
    | (StartOfTurn)               | open           | ProposedUserStartedSpeakingFrame ↑↓      |
    | (Update with words)         | open           | InterimTranscriptionFrame                |
    | (EagerEndOfTurn)            | open           | EagerTranscriptionFrame (with            |
    |                             |                | `eager_eot_threshold`: a reply starts)   |
    | (TurnResumed)               | open           | EagerEndOfTurnCancelFrame: withdrawn     |
    | (EndOfTurn)                 | open           | TranscriptionFrame (finalized),          |
    |                             |                | ProposedUserStoppedSpeakingFrame ↑↓      |
    | (the socket fails mid-turn) | down           | the turn's audio kept again; the turn    |
    |                             |                | goes on, on the next socket              |
    | (the key is refused: 401)   | -              | ErrorFrame ↑ (AUTHENTICATION); no retry  |
    | EndFrame / CancelFrame      | open           | passes; CloseStream, the socket closed   |

    Flux ends turns on the audio it has heard and no Finalize flushes a turn's tail (as one
    does for nova), so a batch can delay an end of turn by up to `batch_secs`: 80 ms here.
    While a turn is open and no audio comes (a muted STT), 0.5 s of silence goes out every
    0.5 s, as pipecat's watchdog does, so that Flux can end the turn.
    """

    Settings = DeepgramFluxSTTSettings

    def __init__(
        self,
        *,
        api_key: str,
        url: str = DEFAULT_URL,
        sample_rate: int | None = None,
        settings: DeepgramFluxSTTSettings | None = None,
        should_interrupt: bool = True,
        batch_secs: float = 0.08,
        max_buffer_secs: float = 10.0,
        stable_secs: float = 5.0,
        **kwargs,
    ):
        """Transcribe linear16 mono at `sample_rate` (default: the pipeline's) with `settings`.

        Args:
            api_key: The Deepgram API key.
            url: Flux's WebSocket URL, `/v2/listen` included (a stand-in's in tests).
            sample_rate: The audio's rate in Hz; None: the pipeline's input rate.
            settings: Model, thresholds, keyterms… (pipecat's `DeepgramFluxSTTService.Settings`).
            should_interrupt: Whether the turn strategies this service recommends (used when
                the pipeline names none) let a turn Flux starts interrupt the bot.
            batch_secs: Audio sent per message.
            max_buffer_secs: Audio kept at most while the socket is down or untranscribed.
            stable_secs: A socket up this long that fails is reopened without a backoff.
            **kwargs: For `STTService`.
        """
        if not api_key:
            raise ValueError("FluxSTTService needs an api_key (DEEPGRAM_API_KEY)")
        store = _default_settings()
        if settings is not None:
            store.apply_update(settings)
        super().__init__(sample_rate=sample_rate, settings=store, **kwargs)
        self.listen_url = websocket_url(url, name="url")
        self._should_interrupt = should_interrupt
        self._backlog = AudioBacklog(f"{self}", batch_secs=batch_secs, max_secs=max_buffer_secs)
        self._sending = asyncio.Lock()  # audio, the watchdog and a reconnect share the backlog
        self._in_turn = False  # Flux started a turn that has not ended
        self._turn_so_far = ""  # the open turn's transcript, from its latest Update
        self._eager = False  # an EagerEndOfTurn stands, neither resumed nor ended
        self._turn_resent_until: float | None = None  # a turn carried onto a new socket
        self._socket = ReconnectingWebsocket(
            self,
            provider="Deepgram Flux",
            url=lambda: self.url,
            headers={"Authorization": f"Token {api_key}"},
            on_open=self._resume,
            on_message=self._on_message,
            on_close=self._keep_unconfirmed,
            on_idle=self._watchdog,
            idle_secs=WATCHDOG_SILENCE_SECS,
            stable_secs=stable_secs,
        )

    @property
    def supports_ttfs(self) -> bool:
        """No: Flux decides where turns end, so there is no wait after speech to measure."""
        return False

    def can_generate_metrics(self) -> bool:
        """TTFB (VAD stop to EndOfTurn) and usage metrics are reported."""
        return True

    def service_metadata_frame(self) -> STTMetadataFrame:
        """Recommend leaving turn detection to Flux (its Proposed… frames)."""
        frame = super().service_metadata_frame()
        frame.user_turn_strategies = ExternalUserTurnStrategies(
            enable_interruptions=self._should_interrupt
        )
        return frame

    @property
    def url(self) -> str:
        """The URL the next connection opens: `listen_url` with the current settings."""
        return f"{self.listen_url}?{urlencode(_query(self.settings, self.sample_rate))}"

    async def _send_kept(self) -> None:
        async with self._sending:
            if not self._socket.is_open:
                return
            try:
                await self._backlog.drain(self.sample_rate, self._socket.send)
            except ConnectionError as e:  # the socket's task reconnects; the audio stays kept
                logger.warning(f"{self}: sending to Flux failed: {e}")

    async def _resume(self) -> None:
        """A socket opened: send what was kept; a turn left open goes on with it."""
        if self._in_turn:
            # Flux starts the turn again from its re-sent audio; if that holds no turn, the
            # turn ends once Flux has heard it all (see `_update`).
            self._turn_resent_until = len(self._backlog.pcm) / 2 / self.sample_rate
        await self._send_kept()

    async def _keep_unconfirmed(self) -> None:
        """The socket is gone: what no EndOfTurn covered goes first on the next one."""
        async with self._sending:
            self._backlog.requeue(self.sample_rate)

    async def _watchdog(self) -> None:
        if not self._in_turn:
            return
        logger.debug(f"{self}: no audio in a turn for {WATCHDOG_SILENCE_SECS} s; sending silence")
        silence = bytes(int(WATCHDOG_SILENCE_SECS * self.sample_rate) * 2)
        self._backlog.add(silence, self.sample_rate, connected=True)
        await self._send_kept()

    async def _on_message(self, message: str | bytes) -> None:
        try:
            data = json.loads(message)
            kind = data["type"]
        except (ValueError, KeyError, TypeError) as e:
            logger.warning(f"{self}: ignoring a Flux message without a type: {e!r}")
            return
        if kind == "TurnInfo":
            await self._turn_info(data)
        elif kind == "Error":
            code, description = data.get("code", "unknown"), data.get("description", "")
            await self.push_error(
                f"Deepgram Flux reported an error [{code}]: {description}",
                category=PERMANENT_ERRORS.get(code),
            )
        elif kind == "Connected":
            logger.debug(f"{self}: Flux connected (request {data.get('request_id')})")
        else:
            logger.debug(f"{self}: Flux {kind}")  # Configure answers: nothing is configured

    async def _turn_info(self, data: dict[str, Any]) -> None:
        event, transcript = data.get("event"), data.get("transcript") or ""
        if event == "StartOfTurn":
            self._turn_resent_until = None
            self._turn_so_far = transcript
            if not self._in_turn:  # (a turn carried onto a new socket has started already)
                self._in_turn = True
                await self.broadcast_frame(ProposedUserStartedSpeakingFrame)
        elif event == "Update":
            await self._update(transcript, data)
        elif event == "EndOfTurn":
            self._eager = False
            await self._end_of_turn(transcript, data)
        elif event == "EagerEndOfTurn":
            self._eager = True
            language = self._language(data)
            await self.push_frame(
                EagerTranscriptionFrame(transcript, "", time_now_iso8601(), language, result=data)
            )
        elif event == "TurnResumed" and self._eager:
            self._eager = False
            await self.push_frame(EagerEndOfTurnCancelFrame())

    async def _update(self, transcript: str, data: dict[str, Any]) -> None:
        if transcript:
            self._turn_so_far = transcript
            frame = InterimTranscriptionFrame(
                transcript, "", time_now_iso8601(), self._language(data), result=data
            )
            await self.push_frame(frame)
            return
        heard = float(data.get("audio_window_end") or 0.0)
        if self._turn_resent_until is not None and heard >= self._turn_resent_until:
            await self._end_turn_cut_short()

    async def _end_of_turn(self, transcript: str, data: dict[str, Any]) -> None:
        self._in_turn, self._turn_so_far = False, ""
        self._backlog.confirm(float(data.get("audio_window_end") or 0.0), self.sample_rate)
        confidence = _average_confidence(data.get("words"))
        floor = getattr(self.settings, "min_confidence", None)
        if not floor or (confidence is not None and confidence > floor):
            await self.emit_stt_usage_metrics()
            frame = TranscriptionFrame(
                transcript, "", time_now_iso8601(), self._language(data), result=data
            )
            frame.finalized = True  # Flux committed the turn
            await self.push_frame(frame)
        else:
            logger.warning(f"{self}: turn dropped, confidence {confidence} under {floor}")
        await self.broadcast_frame(ProposedUserStoppedSpeakingFrame)

    async def _end_turn_cut_short(self) -> None:
        """The re-sent audio held no turn: end the open one on what Flux had said of it."""
        logger.debug(f"{self}: the turn cut by a reconnect was not heard again; ending it")
        self._in_turn, self._turn_resent_until = False, None
        transcript, self._turn_so_far = self._turn_so_far, ""
        if transcript:
            await self.emit_stt_usage_metrics()
            await self.push_frame(TranscriptionFrame(transcript, "", time_now_iso8601()))
        await self.broadcast_frame(ProposedUserStoppedSpeakingFrame)

    def _language(self, data: dict[str, Any]) -> Language | None:
        """The turn's language: Flux's first detected one, or English for the English model."""
        codes = data.get("languages") or []
        if codes:
            try:
                return Language(codes[0])
            except ValueError:
                return None
        return Language.EN if self.settings.model == "flux-general-en" else None


def _default_settings() -> DeepgramFluxSTTSettings:
    """The defaults pipecat's `DeepgramFluxSTTService` starts from, every field given."""
    return DeepgramFluxSTTSettings(
        model="flux-general-en",
        language=None,
        eager_eot_threshold=None,
        eot_threshold=None,
        eot_timeout_ms=None,
        keyterm=[],
        min_confidence=None,
        numerals=None,
        profanity_filter=None,
        redact=None,
        language_hints=None,
    )


def _query(settings: Any, sample_rate: int) -> list[tuple[str, Any]]:
    """The `/v2/listen` query: what pipecat's `DeepgramFluxSTTService` sends for the settings."""
    pairs: list[tuple[str, Any]] = [
        ("model", settings.model),
        ("sample_rate", sample_rate),
        ("encoding", "linear16"),
    ]
    for name in ("eager_eot_threshold", "eot_threshold", "eot_timeout_ms"):
        if getattr(settings, name) is not None:
            pairs.append((name, getattr(settings, name)))
    for name in ("numerals", "profanity_filter"):
        if getattr(settings, name) is not None:
            pairs.append((name, str(getattr(settings, name)).lower()))
    if settings.redact is not None:
        pairs.append(("redact", settings.redact))
    pairs += [("keyterm", term) for term in settings.keyterm or []]
    if settings.language_hints and settings.model != MULTILINGUAL:
        logger.warning(f"language_hints need {MULTILINGUAL}; ignored for {settings.model}")
    elif settings.language_hints:
        pairs += [("language_hint", code) for code in _hint_codes(settings.language_hints)]
    return pairs


def _hint_codes(hints: list) -> list[str]:
    """Flux's codes for the hinted languages ("es", not "es-MX"), each once, in order."""
    codes: list[str] = []
    for hint in hints:
        try:
            code = language_to_deepgram_flux_language(Language(hint))
        except ValueError:
            code = str(hint)
        if code and code not in codes:
            codes.append(code)
    return codes


def _average_confidence(words: Any) -> float | None:
    if not isinstance(words, list):
        return None
    confidences = [w["confidence"] for w in words if isinstance(w.get("confidence"), int | float)]
    return sum(confidences) / len(confidences) if confidences else None
