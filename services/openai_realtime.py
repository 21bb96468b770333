"""OpenAI Realtime on a phone line: μ-law both ways, a barge-in cut where the caller's ear was."""

import asyncio
import base64
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

from loguru import logger
from pipecat.adapters.llm.services.open_ai_realtime_adapter import OpenAIRealtimeLLMAdapter
from pipecat.frames.frames import (
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    EndWorkerFrame,
    Frame,
    FunctionCallResultFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMServiceMetadataFrame,
    LLMUpdateSettingsFrame,
    ProposedUserStartedSpeakingFrame,
    ProposedUserStoppedSpeakingFrame,
    StartFrame,
    TextType,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import LLMService
from pipecat.services.openai.realtime import events
from pipecat.services.settings import LLMSettings
from pipecat.turns.user_turn_strategies import ExternalUserTurnStrategies
from pipecat.utils.time import time_now_iso8601
from websockets.exceptions import WebSocketException

from services.realtime_caller_audio import PHONE_RATE, CallerAudio
from services.realtime_functions import FunctionCalls
from services.realtime_replies import Replies, Reply
from services.realtime_responses import Ask, Responses, token_usage
from services.realtime_socket import RealtimeSocket
from telephony.frames import MulawAudioFrame, ReplyCutFrame
from telephony.mulaw import pcm_to_ulaw, ulaw_to_pcm

SAY_VERBATIM = 'Say exactly this, word for word, and nothing else: "{text}"'
FAREWELL_TIMEOUT_SECS = 15.0  # a farewell that never finishes does not hold the hang-up longer
# Refusals that say only that nothing was running, or that something still was.
QUIET_ERRORS = {"response_cancel_not_active", "conversation_already_has_active_response"}
UP = FrameDirection.UPSTREAM


class RealtimeLLMService(LLMService[OpenAIRealtimeLLMAdapter]):
    """OpenAI's Realtime API on an 8 kHz μ-law call, nothing resampled, over its own WebSocket.

    | frame or event                         | what it does                                 |
    |----------------------------------------|----------------------------------------------|
    | MulawAudio ↓ (8 kHz PCM, and μ-law)    | the caller's μ-law bytes, as Twilio sent     |
    |                                        | them, once the session is `audio/pcmu`;      |
    |                                        | other audio: ErrorFrame ↑ once, dropped      |
    | response.created                       | LLMFullResponseStart ↓                       |
    | response.output_audio.delta (μ-law)    | TTSStarted ↓ at a reply's first delta (or    |
    |   and …_transcript.delta               | its words'), TTSAudioRaw ↓ (8 kHz PCM),      |
    |                                        | TTSText ↓ (the bot's words)                  |
    | response.done                          | TTSStopped ↓, LLMFullResponseEnd ↓, usage    |
    | input transcription delta / completed  | InterimTranscription ↑ / Transcription ↑     |
    | function call arguments done           | the registered function runs; its result ↓   |
    |                                        | goes to OpenAI as the call's output          |
    | TTSSpeak ↓, or pushed by a handler     | response.create: say it word for word        |
    | EndWorker pushed after something to say| held until that response is done            |
    | UserStoppedSpeaking ↓ (local turns)    | commit the caller's audio, response.create   |
    | Interruption ↓                         | local turns: input buffer cleared, the       |
    |                                        | caller's speech replayed, response.cancel;   |
    |                                        | the reply's late deltas dropped              |
    | ReplyCut ↑ (from the transport)        | truncate the reply where the caller stopped  |
    |                                        | hearing it (Twilio's marks)                  |
    | speech_started / _stopped (server VAD) | ProposedUserStarted/StoppedSpeaking ↕        |
    | an error event                         | logged; the session goes on                  |
    | connection refused or lost             | ErrorFrame ↑; nothing more is said           |

    Call `join_call` before the pipeline starts.
    """

    adapter_class = OpenAIRealtimeLLMAdapter

    def __init__(self, *, api_key: str, base_url: str, session: events.SessionProperties, **kwargs):
        """Speak with OpenAI at `base_url` (`ws(s)://…/v1/realtime`) in `session`.

        `session` is sent as it is (the model, its voice, `audio/pcmu` both ways…), with the
        call's tools added.
        """
        if not session.model:
            raise ValueError("session.model: the Realtime model is required")
        super().__init__(settings=_settings(session), **kwargs)
        self.session = session
        self._socket = RealtimeSocket(base_url, api_key=api_key, model=session.model)
        self.base_url = self._socket.url
        self._record: LLMContext | None = None  # the call's record and tools
        self._caller = CallerAudio()
        self._replies = Replies()
        self._responses = Responses()
        self._session_ready = False  # audio/pcmu: the caller's audio can go
        self._gone = False  # the connection failed or ended: nothing more will be said
        self._closing = False
        self._receiver: asyncio.Task | None = None
        self._calls = FunctionCalls()
        self._server_events: dict[str, Callable[[Any], Awaitable[None]]] = {
            "session.created": self._configure,
            "session.updated": self._ready,
            "response.created": self._response_created,
            "response.output_audio.delta": self._audio_delta,
            "response.output_audio_transcript.delta": self._transcript_delta,
            "response.done": self._response_done,
            "conversation.item.added": self._item_added,
            "response.function_call_arguments.done": self._function_call,
            "conversation.item.input_audio_transcription.delta": self._caller_words,
            "conversation.item.input_audio_transcription.completed": self._caller_turn,
            "input_audio_buffer.speech_started": self._speech_started,
            "input_audio_buffer.speech_stopped": self._speech_stopped,
            "error": self._error,
        }
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
        self._record = context
        audio = self.session.audio
        if audio is None or audio.input is None:
            raise ValueError("session.audio.input: the session must declare its input audio")
        audio.input.turn_detection = turn_detection or False

    @property
    def server_turns(self) -> bool:
        """Whether OpenAI's server VAD ends the caller's turns."""
        audio = self.session.audio
        return bool(audio and audio.input and audio.input.turn_detection)

    def can_generate_metrics(self) -> bool:
        """TTFB, processing time and token usage are measured."""
        return True

    def service_metadata_frame(self) -> LLMServiceMetadataFrame:
        """A realtime service; with server VAD it recommends external turn strategies."""
        return LLMServiceMetadataFrame(
            service_name=self.name,
            is_realtime_service=True,
            user_turn_strategies=ExternalUserTurnStrategies() if self.server_turns else None,
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, frame: StartFrame):
        """Connect to OpenAI (in the background: the caller's audio is held meanwhile)."""
        await super().start(frame)
        self._receiver = self.create_task(self._run_session(), name="openai-realtime-session")

    async def stop(self, frame: EndFrame):
        """Close the session."""
        await super().stop(frame)
        await self._close()

    async def cancel(self, frame: CancelFrame):
        """Close the session at once."""
        await super().cancel(frame)
        await self._close()

    async def cleanup(self):
        """Close the session and stop a pending hang-up timer."""
        await super().cleanup()
        await self._close()
        await self._stop_end_timer()

    async def _close(self) -> None:
        self._closing = True
        if self._receiver:  # first: it may be connecting, and would open what is closed
            task, self._receiver = self._receiver, None
            await self.cancel_task(task, timeout=1.0)
        await self._socket.close()

    async def _run_session(self) -> None:
        try:
            await self._socket.open()
        except (OSError, WebSocketException) as e:
            await self._lost(f"could not connect to OpenAI Realtime: {e}", e)
            return
        async with aclosing(self._socket.events()) as stream:
            async for event in stream:
                await self._on_event(event)
        if not self._closing:
            await self._lost("OpenAI Realtime closed the session", None)

    async def _lost(self, message: str, exception: Exception | None) -> None:
        """The session cannot go on: say so, and let nothing wait for it."""
        self._gone = True
        self._session_ready = False
        await self.push_error(message, exception=exception, force_treat_as_permanent=True)
        self._responses.forget_says()
        await self._release_end()

    # -- frames ----------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Send the caller's audio and turns to OpenAI; cut a reply where it was heard."""
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            await self._caller_audio(frame)
            return  # the caller's audio ends here
        if isinstance(frame, LLMUpdateSettingsFrame):
            return  # handled (or passed on) by LLMService
        if isinstance(frame, InterruptionFrame):
            await self._interrupted()
        elif isinstance(frame, ReplyCutFrame) and direction == UP:
            await self._truncate_where_heard(frame)
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._caller.speech_started(frame.start_secs)
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._caller.speech_stopped()
        elif isinstance(frame, UserStoppedSpeakingFrame) and not self.server_turns:
            await self._commit_turn()
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._replies.heard()
        elif isinstance(frame, LLMContextFrame) and direction == UP:
            await self._answer_results()
        await self.push_frame(frame, direction)

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM):
        """Say what is to be said, hold a hang-up behind it, send function results to OpenAI.

        The greeting and the prompts come down the pipeline (`process_frame` passes them
        here); the farewell and its EndWorker are pushed by the end_call handler.
        """
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, TTSSpeakFrame):
                await self._say(frame.text)
                return
            if isinstance(frame, EndWorkerFrame) and self._responses.saying_something():
                self._hold_end(frame)
                return
            if isinstance(frame, FunctionCallResultFrame):
                await self._send_result(frame)
        await super().push_frame(frame, direction)

    # -- the caller ------------------------------------------------------------------------

    async def _caller_audio(self, frame: InputAudioRawFrame) -> None:
        if frame.sample_rate != PHONE_RATE or frame.num_channels != 1:
            await self._wrong_audio(frame)
            return
        # Twilio's own bytes when the frame has them: re-encoding would turn 0x7F into 0xFF.
        ulaw = frame.ulaw if isinstance(frame, MulawAudioFrame) else pcm_to_ulaw(frame.audio)
        if self._session_ready:
            await self._append(ulaw)
        else:  # not yet audio/pcmu: OpenAI would read it as 24 kHz PCM
            self._caller.hold(ulaw)

    async def _append(self, ulaw: bytes) -> None:
        audio = base64.b64encode(ulaw).decode("ascii")
        await self._socket.send(events.InputAudioBufferAppendEvent(audio=audio))
        self._caller.appended(ulaw)

    async def _wrong_audio(self, frame: InputAudioRawFrame) -> None:
        if not self._rate_warned:
            self._rate_warned = True
            await self.push_error(
                f"{self}: the caller's audio is {frame.sample_rate} Hz, {frame.num_channels} "
                f"channel(s); the session takes 8 kHz mono μ-law: dropped"
            )

    async def _commit_turn(self) -> None:
        """Local turn detection ended the caller's turn: OpenAI answers what it heard."""
        self._caller.turn_committed()
        commit = events.InputAudioBufferCommitEvent()
        if self._session_ready:
            await self._socket.send(commit)
        else:  # after the audio held before it
            self._caller.hold_event(commit)
        self._responses.want(Ask())
        await self._ask_next()

    async def _interrupted(self) -> None:
        """The caller cut in: stop the reply; with local turns, keep their first words."""
        busy = self._responses.active or self._responses.asked
        self._responses.cut()
        await self.stop_all_metrics()
        if self.server_turns:
            return  # OpenAI's VAD cancelled the response, and keeps the caller's audio
        if not self._session_ready:
            return  # nothing runs, nothing of the caller's is at OpenAI yet
        await self._socket.send(events.InputAudioBufferClearEvent())
        replay = self._caller.onset_replay()
        if replay:  # the clear took the words spoken before the barge-in was confirmed
            audio = base64.b64encode(replay).decode("ascii")
            await self._socket.send(events.InputAudioBufferAppendEvent(audio=audio))
        if busy:
            await self._socket.send(events.ResponseCancelEvent())

    # -- what the bot says -----------------------------------------------------------------

    async def _say(self, text: str) -> None:
        if self._gone:
            logger.warning(f"{self}: the session is gone, not saying {text!r}")
            return
        self._responses.want(Ask(text))
        await self._ask_next()

    async def _ask_next(self) -> None:
        """Ask for the next response, if the session is ready and nothing runs."""
        if not self._session_ready:
            return
        ask = self._responses.next_ask()
        if ask is None:
            return
        properties = None
        if ask.text is not None:
            instructions = SAY_VERBATIM.format(text=ask.text)
            properties = events.ResponseProperties(
                output_modalities=["audio"], instructions=instructions
            )
        event = events.ResponseCreateEvent(response=properties)
        ask.event_id = event.event_id
        await self.start_ttfb_metrics()
        await self.start_processing_metrics()
        await self._socket.send(event)

    def _hold_end(self, frame: EndWorkerFrame) -> None:
        """End the call after the words still to be said (a farewell, OpenAI's to speak)."""
        self._held_end = frame
        if not self._end_timer:
            self._end_timer = self.create_task(self._end_anyway(), name="realtime-farewell")

    async def _end_anyway(self) -> None:
        await asyncio.sleep(FAREWELL_TIMEOUT_SECS)
        self._end_timer = None
        logger.warning(f"{self}: the farewell did not finish in {FAREWELL_TIMEOUT_SECS:.0f} s")
        self._responses.forget_says()
        await self._release_end()

    async def _release_end(self) -> None:
        if self._held_end and not self._responses.saying_something():
            frame, self._held_end = self._held_end, None
            await self._stop_end_timer()
            await self.push_frame(frame)

    async def _stop_end_timer(self) -> None:
        if self._end_timer:
            timer, self._end_timer = self._end_timer, None
            await self.cancel_task(timer)

    # -- barge-in --------------------------------------------------------------------------

    async def _truncate_where_heard(self, cut: ReplyCutFrame) -> None:
        """Tell OpenAI its reply stopped where the caller's playout did (Twilio's marks)."""
        reply = self._replies.cut(cut.spoken)
        for truncation in reply.truncations(cut.heard_ms) if reply else []:
            logger.info(
                f"barge-in: OpenAI's reply truncated at {truncation.audio_end_ms} ms,"
                " as the caller heard it"
            )
            await self._socket.send(
                events.ConversationItemTruncateEvent(
                    item_id=truncation.item_id,
                    content_index=truncation.content_index,
                    audio_end_ms=truncation.audio_end_ms,
                )
            )

    # -- functions -------------------------------------------------------------------------

    async def _send_result(self, frame: FunctionCallResultFrame) -> None:
        output = self._calls.output(frame)
        if output:
            await self._socket.send(output)

    async def _answer_results(self) -> None:
        """The assistant aggregator asks for a response to the results it recorded."""
        if self._calls.unanswered:
            self._calls.unanswered = False
            self._responses.want(Ask())
            await self._ask_next()

    # -- server events ---------------------------------------------------------------------

    async def _on_event(self, event: events.ServerEvent) -> None:
        handler = self._server_events.get(event.type)
        if handler:
            await handler(event)

    async def _configure(self, _: events.SessionCreatedEvent) -> None:
        """The session exists: make it ours (μ-law, the voice, the prompt, the call's tools)."""
        session = self.session
        if self._record is not None:
            params = await self.get_llm_adapter().get_llm_invocation_params(self._record)
            session = session.model_copy(update={"tools": params["tools"]})
        await self._socket.send(events.SessionUpdateEvent(session=session))

    async def _ready(self, _: events.SessionUpdatedEvent) -> None:
        """The session is μ-law: what was held goes, in order, before any new audio."""
        while held := self._caller.take_held():  # more may be held while this is sent
            for item in held:
                await (self._append(item) if isinstance(item, bytes) else self._socket.send(item))
        self._session_ready = True
        await self._ask_next()

    async def _response_created(self, event: events.ResponseCreated) -> None:
        response_id = event.response.id or ""
        self._responses.created(response_id)
        self._calls.unanswered = False  # this response takes them in
        if not self._responses.dropped(response_id):
            await self.push_frame(LLMFullResponseStartFrame())

    async def _audio_delta(self, event: events.ResponseAudioDelta) -> None:
        if self._responses.dropped(event.response_id):
            return  # audio of a reply the caller cut off, already on its way
        await self.stop_ttfb_metrics()
        ulaw = base64.b64decode(event.delta)
        reply = await self._reply(event.response_id)
        reply.add_audio(event.item_id, event.content_index, len(ulaw))
        await self.push_frame(TTSAudioRawFrame(ulaw_to_pcm(ulaw), PHONE_RATE, 1))

    async def _transcript_delta(self, event: events.ResponseAudioTranscriptDelta) -> None:
        if self._responses.dropped(event.response_id) or not event.delta:
            return
        reply = await self._reply(event.response_id)  # its words can come before its audio
        reply.text += event.delta
        frame = TTSTextFrame(event.delta, text_type=TextType.SENTENCE)
        frame.includes_inter_frame_spaces = True  # deltas carry their own spaces
        await self.push_frame(frame)

    async def _reply(self, response_id: str) -> Reply:
        """The response's reply; its first delta begins it: TTSStarted."""
        reply = self._replies.of(response_id)
        if reply is None:
            reply = self._replies.begin(response_id)
            await self.push_frame(TTSStartedFrame())
        return reply

    async def _response_done(self, event: events.ResponseDone) -> None:
        response = event.response
        response_id = response.id or ""
        if not self._responses.dropped(response_id):
            reply = self._replies.of(response_id)
            if reply:
                reply.done = True
                await self.push_frame(TTSStoppedFrame())
            await self.push_frame(LLMFullResponseEndFrame())
        self._responses.done(response_id)
        usage = token_usage(response)
        if usage:
            await self.start_llm_usage_metrics(usage)
        await self.stop_processing_metrics()
        if response.status == "failed":
            error = (response.status_details or {}).get("error") or {}
            await self.push_error(f"OpenAI Realtime: {error.get('message') or 'response failed'}")
        await self._ask_next()
        await self._release_end()

    async def _item_added(self, event: events.ConversationItemAdded) -> None:
        self._calls.announced(event.item)

    async def _function_call(self, event: events.ResponseFunctionCallArgumentsDone) -> None:
        call = self._calls.call(event, self._record)
        if call:
            await self.run_function_calls([call])

    async def _caller_words(
        self, event: events.ConversationItemInputAudioTranscriptionDelta
    ) -> None:
        frame = InterimTranscriptionFrame(event.delta, "", time_now_iso8601(), result=event)
        await self.push_frame(frame, UP)

    async def _caller_turn(
        self, event: events.ConversationItemInputAudioTranscriptionCompleted
    ) -> None:
        """The caller's turn, transcribed: to the user aggregator, for the record."""
        frame = TranscriptionFrame(event.transcript, "", time_now_iso8601(), result=event)
        await self.push_frame(frame, UP)

    async def _speech_started(self, _: events.InputAudioBufferSpeechStarted) -> None:
        """Server VAD: the caller speaks; OpenAI cancels its reply itself."""
        self._responses.cut()
        await self.broadcast_frame(ProposedUserStartedSpeakingFrame)

    async def _speech_stopped(self, _: events.InputAudioBufferSpeechStopped) -> None:
        """Server VAD: the caller's turn ended; OpenAI commits it and answers."""
        await self.start_ttfb_metrics()
        await self.start_processing_metrics()
        await self.broadcast_frame(ProposedUserStoppedSpeakingFrame)

    async def _error(self, event: events.ErrorEvent) -> None:
        """Log an error event and go on: OpenAI keeps the session open after one."""
        error = event.error
        retry = error.code == "conversation_already_has_active_response"
        if self._responses.refused(error.event_id, retry=retry) and not retry:
            await self._release_end()  # what it was to say will not be said
        if error.code in QUIET_ERRORS:
            logger.debug(f"{self}: OpenAI Realtime: {error.message}")
            return
        logger.warning(f"{self}: OpenAI Realtime error {error.code or error.type}: {error.message}")


def _settings(session: events.SessionProperties) -> LLMSettings:
    """The LLM settings pipecat reads (the model, for metrics): the session holds the rest."""
    return LLMSettings(
        model=session.model,
        system_instruction=session.instructions,
        temperature=None,
        max_tokens=None,
        top_p=None,
        top_k=None,
        frequency_penalty=None,
        presence_penalty=None,
        seed=None,
        filter_incomplete_user_turns=False,
        user_turn_completion_config=None,
        use_provider_thinking_default=False,
    )
