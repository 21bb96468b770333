"""OpenAI Realtime on a phone line: μ-law both ways, a barge-in cut where the caller's ear was."""

import asyncio
import base64
import time

from loguru import logger
from pipecat.frames.frames import (
    EndWorkerFrame,
    Frame,
    InputAudioRawFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.openai.realtime import events
from pipecat.services.openai.realtime.llm import CurrentAudioResponse, OpenAIRealtimeLLMService

from telephony.frames import MulawAudioFrame, ReplyCutFrame
from telephony.mulaw import pcm_to_ulaw, ulaw_to_pcm

PHONE_RATE = 8000  # samples per second, and μ-law bytes per second
SAY_VERBATIM = 'Say exactly this, word for word, and nothing else: "{text}"'
# After a clear of OpenAI's input buffer, the caller's speech is replayed from this long before
# the VAD's start (the VAD fires `start_secs` into speech, give or take a window).
ONSET_MARGIN_SECS = 0.3
SAME_SPEECH_SECS = 1.0  # a VAD start this soon after a stop continues the same speech
RECENT_SECS = 10.0  # the caller's latest audio kept for that replay
HELD_SECS = 10.0  # audio kept while the session is not yet μ-law (the latest)
FAREWELL_TIMEOUT_SECS = 15.0  # a farewell that never finishes does not hold the hang-up longer


class RealtimeLLMService(OpenAIRealtimeLLMService):
    """pipecat's OpenAI Realtime service on an 8 kHz μ-law call, nothing resampled.

    | frame or event                         | what it does                                 |
    |----------------------------------------|----------------------------------------------|
    | MulawAudio ↓ (8 kHz PCM, and μ-law)    | the caller's μ-law bytes, as Twilio sent     |
    |                                        | them, once the session is `audio/pcmu`       |
    | response.output_audio.delta (μ-law)    | TTSAudioRaw ↓, 8 kHz PCM                     |
    | transcript delta before any audio      | TTSStarted ↓ first: the reply has begun      |
    | TTSSpeak ↓, or pushed by a handler     | response.create: say it word for word        |
    | EndWorker pushed after a farewell      | held until the farewell's response is done   |
    | Interruption ↓                         | response.cancel; its late deltas are dropped |
    | ReplyCut ↑ (from the transport)        | truncate the reply where the caller stopped  |
    |                                        | hearing it (Twilio's marks)                  |
    | VADUserStarted ↓                       | notes where the caller's speech began, to    |
    |                                        | replay it after an input buffer clear        |
    | an error event                         | logged; the session goes on                  |

    Call `join_call` before the pipeline starts.
    """

    def __init__(self, **kwargs):
        """Like pipecat's service; the session must declare `audio/pcmu` both ways."""
        super().__init__(**kwargs)
        self._cut_item: tuple[CurrentAudioResponse, list[list]] | None = None  # to truncate
        self._held = bytearray()  # the caller's μ-law before the session is ready
        self._recent = bytearray()  # the caller's latest μ-law, as sent
        self._sent = 0  # μ-law bytes appended in all
        self._onset: int | None = None  # where (in `_sent`) the caller's speech began
        self._speech_ended = -PHONE_RATE * SAME_SPEECH_SECS
        self._item_audio: list[list] = []  # [item id, ms] of the playing response's items
        self._active: str | None = None  # the running response
        self._dropped: str | None = None  # a response cut off: its late deltas are dropped
        self._says: list[str] = []  # to say, in order
        self._say_sent: str | None = None  # being said: response.create sent, not created
        self._saying: set[str] = set()  # responses saying something
        self._held_end: EndWorkerFrame | None = None
        self._end_timer: asyncio.Task | None = None
        self._rate_warned = False

    def join_call(
        self, *, context: LLMContext, turn_detection: events.TurnDetection | None
    ) -> None:
        """Wire the service into one call before it starts.

        The conversation lives at OpenAI, built from the call's audio: `context` is the call's
        record and its tools (end_call), never replayed to OpenAI. `turn_detection`: OpenAI's
        server VAD ends turns; None: the pipeline's local VAD and turn strategies do.
        """
        self._context = context
        self._llm_needs_conversation_setup = False
        audio = self._settings.session_properties.audio
        audio.input.turn_detection = turn_detection or False
        # Without server VAD, pipecat warns that no turn frames come: ours come from local VAD.
        self._warned_realtime_service_no_turn_frames = turn_detection is None

    # -- frames ----------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Note the caller's speech onsets, then handle the frame as pipecat does."""
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._speech_began(frame.start_secs)
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._speech_ended = self._sent
        elif isinstance(frame, UserStoppedSpeakingFrame):
            self._onset = None  # the turn is committed: its speech is OpenAI's now
        elif isinstance(frame, ReplyCutFrame) and direction == FrameDirection.UPSTREAM:
            await self._truncate_where_heard(frame.heard_ms)
        await super().process_frame(frame, direction)

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM):
        """Speak what is to be said, hold a hang-up behind it, and relabel the audio."""
        if direction == FrameDirection.DOWNSTREAM:
            # The greeting comes down the pipeline (process_frame passes every frame on);
            # the farewell is pushed by the end_call handler.
            if isinstance(frame, TTSSpeakFrame):
                await self._say(frame.text)
                return
            if isinstance(frame, EndWorkerFrame) and self._saying_something():
                await self._hold_end(frame)
                return
            if isinstance(frame, TTSAudioRawFrame):
                # pipecat labels every delta 24 kHz PCM; the session's output is μ-law.
                frame = TTSAudioRawFrame(ulaw_to_pcm(frame.audio), PHONE_RATE, 1)
        await super().push_frame(frame, direction)

    # -- the caller's audio ----------------------------------------------------------------

    async def _send_user_audio(self, frame: InputAudioRawFrame):
        if frame.sample_rate != PHONE_RATE or frame.num_channels != 1:
            await self._wrong_audio(frame)
            return
        # Twilio's own bytes when the frame has them: re-encoding would turn 0x7F into 0xFF.
        ulaw = frame.ulaw if isinstance(frame, MulawAudioFrame) else pcm_to_ulaw(frame.audio)
        if not self._api_session_ready:  # not yet audio/pcmu: OpenAI would read it as PCM
            self._held += ulaw
            del self._held[: -int(HELD_SECS * PHONE_RATE)]
            return
        await self._append(ulaw)

    async def _append(self, ulaw: bytes) -> None:
        audio = base64.b64encode(ulaw).decode("ascii")
        await self.send_client_event(events.InputAudioBufferAppendEvent(audio=audio))
        self._sent += len(ulaw)
        self._recent += ulaw
        del self._recent[: -int(RECENT_SECS * PHONE_RATE)]

    async def _wrong_audio(self, frame: InputAudioRawFrame) -> None:
        if not self._rate_warned:
            self._rate_warned = True
            await self.push_error(
                f"{self}: the caller's audio is {frame.sample_rate} Hz, {frame.num_channels} "
                f"channel(s); the session takes 8 kHz mono μ-law: dropped"
            )

    def _speech_began(self, start_secs: float) -> None:
        if (
            self._onset is not None
            and self._sent - self._speech_ended < SAME_SPEECH_SECS * PHONE_RATE
        ):
            return  # more of the same speech
        self._onset = self._sent - int((start_secs + ONSET_MARGIN_SECS) * PHONE_RATE)

    async def _replay_user_audio_preroll(self):
        """After the input buffer's clear: the caller's speech so far, as it was sent."""
        start = self._onset if self._onset is not None else self._sent - PHONE_RATE // 2
        replay = bytes(self._recent[max(0, len(self._recent) - (self._sent - start)) :])
        if replay:
            audio = base64.b64encode(replay).decode("ascii")
            await self.send_client_event(events.InputAudioBufferAppendEvent(audio=audio))

    # -- the bot's audio -------------------------------------------------------------------

    async def _handle_evt_audio_delta(self, evt):
        if evt.response_id == self._dropped:
            return  # audio of a reply the caller cut off, already on its way
        if not self._current_audio_response:
            await self._reply_begins(evt)
        if not self._item_audio or self._item_audio[-1][0] != evt.item_id:
            self._item_audio.append([evt.item_id, 0.0])
        self._item_audio[-1][1] += _decoded_size(evt.delta) / PHONE_RATE * 1000
        await super()._handle_evt_audio_delta(evt)

    async def _handle_evt_audio_transcript_delta(self, evt):
        if evt.response_id == self._dropped:
            return
        if not self._current_audio_response:  # a reply's words can come before its audio
            await self._reply_begins(evt)
        await super()._handle_evt_audio_transcript_delta(evt)

    async def _reply_begins(self, evt) -> None:
        """The reply's first delta: TTSStarted, so its words and audio are one reply."""
        self._current_audio_response = CurrentAudioResponse(
            item_id=evt.item_id,
            content_index=evt.content_index,
            start_time_ms=int(time.time() * 1000),
            response_id=evt.response_id,
        )
        self._item_audio = []
        await self.push_frame(TTSStartedFrame())

    # -- barge-in --------------------------------------------------------------------------

    async def _handle_interruption(self):
        self._dropped = self._active or self._dropped
        await super()._handle_interruption()

    async def _handle_evt_speech_started(self, evt):
        self._dropped = self._active or self._dropped  # server VAD: OpenAI cancels it
        await super()._handle_evt_speech_started(evt)

    async def _truncate_current_audio_response(self):
        """Keep the interrupted reply to truncate once the transport says what was heard."""
        current, self._current_audio_response = self._current_audio_response, None
        self._cut_item = (current, [list(item) for item in self._item_audio]) if current else None

    async def _truncate_where_heard(self, heard_ms: float) -> None:
        """Tell OpenAI its reply stopped where the caller's playout did (Twilio's marks)."""
        if not self._cut_item:
            return
        (current, item_audio), self._cut_item = self._cut_item, None
        offset, item_ms = 0.0, 0.0
        for item_id, ms in item_audio:
            if item_id == current.item_id:
                item_ms = ms
                break
            offset += ms
        end_ms = int(min(max(heard_ms - offset, 0.0), item_ms))
        logger.info(f"barge-in: OpenAI's reply truncated at {end_ms} ms, as the caller heard it")
        await self.send_client_event(
            events.ConversationItemTruncateEvent(
                item_id=current.item_id, content_index=current.content_index, audio_end_ms=end_ms
            )
        )

    # -- saying the greeting and the farewell ----------------------------------------------

    async def _say(self, text: str) -> None:
        self._says.append(text)
        await self._say_next()

    async def _say_next(self) -> None:
        if not self._says or not self._api_session_ready or self._response_active:
            return
        self._say_sent = self._says.pop(0)
        self._response_active = True  # as pipecat does: no second response.create meanwhile
        response = events.ResponseProperties(
            output_modalities=["audio"], instructions=SAY_VERBATIM.format(text=self._say_sent)
        )
        await self.send_client_event(events.ResponseCreateEvent(response=response))

    def _saying_something(self) -> bool:
        return bool(self._says or self._say_sent or self._saying)

    async def _hold_end(self, frame: EndWorkerFrame) -> None:
        """End the call after the farewell, which OpenAI has yet to speak."""
        self._held_end = frame
        self._end_timer = self.create_task(self._end_anyway())

    async def _end_anyway(self) -> None:
        await asyncio.sleep(FAREWELL_TIMEOUT_SECS)
        self._end_timer = None
        logger.warning(f"{self}: the farewell did not finish in {FAREWELL_TIMEOUT_SECS:.0f} s")
        self._says.clear()
        self._say_sent = None
        self._saying.clear()
        await self._release_end()

    async def _release_end(self) -> None:
        if self._held_end and not self._saying_something():
            frame, self._held_end = self._held_end, None
            if self._end_timer:
                timer, self._end_timer = self._end_timer, None
                await self.cancel_task(timer)
            await self.push_frame(frame)

    # -- server events ---------------------------------------------------------------------

    async def _handle_evt_session_updated(self, evt):
        await super()._handle_evt_session_updated(evt)
        if self._held:
            held, self._held = bytes(self._held), bytearray()
            await self._append(held)
        await self._say_next()

    async def _handle_evt_response_created(self, evt):
        await super()._handle_evt_response_created(evt)
        self._active = evt.response.id
        if self._say_sent is not None:
            self._say_sent = None
            self._saying.add(evt.response.id)

    async def _handle_evt_response_done(self, evt):
        await super()._handle_evt_response_done(evt)
        response_id = evt.response.id
        self._active = None if self._active == response_id else self._active
        self._dropped = None if self._dropped == response_id else self._dropped
        self._saying.discard(response_id)
        await self._say_next()
        await self._release_end()

    async def _maybe_handle_evt_retrieve_conversation_item_error(self, evt):
        """Log an error event and go on: pipecat's receive loop ends at any it does not know.

        OpenAI keeps the session open after most errors, and a call must not go mute for
        one refused event (this is the only hook pipecat calls before giving up).
        """
        if await super()._maybe_handle_evt_retrieve_conversation_item_error(evt):
            return True
        error = evt.error
        if error.code == "conversation_already_has_active_response" and self._say_sent:
            self._says.insert(0, self._say_sent)  # say it after the response running now
            self._say_sent = None
        if error.code in ("response_cancel_not_active", "conversation_already_has_active_response"):
            return False  # pipecat logs these at debug level and goes on
        logger.warning(f"{self}: OpenAI Realtime error {error.code or error.type}: {error.message}")
        return True

    async def cleanup(self):
        """Stop a pending hang-up timer, then disconnect."""
        await super().cleanup()
        if self._end_timer:
            timer, self._end_timer = self._end_timer, None
            await self.cancel_task(timer)


def _decoded_size(b64: str) -> int:
    """Bytes of a base64 string, without decoding it."""
    return len(b64) * 3 // 4 - b64[-2:].count("=")
