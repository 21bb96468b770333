"""The call's recorder: a pipecat observer that turns the call's frames into its record."""

from collections.abc import Callable

import numpy as np
from pipecat.frames.frames import (
    BotStoppedSpeakingFrame,
    ErrorFrame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InputAudioRawFrame,
    LLMContextUserTurnFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    MetricsFrame,
    OutputAudioRawFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import LLMUsageMetricsData, TTSUsageMetricsData
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import LLMService
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport

from records.latency import reply_latency
from records.record import CallInfo, Event, Turn
from telephony.frames import ReplyCutFrame
from turns.frames import ReplyWithdrawnFrame

VOICE_RMS = 500.0  # a 20 ms packet louder than this (-36 dBFS) holds the caller's voice
PACKET_SECS = 0.02  # Twilio's packets: a frame of the caller's audio joins one or more
KEYS_PREFIX = "The caller pressed "  # how the keypad words an entry for the LLM

Sink = Callable[[CallInfo | Turn | Event], None]


class CallRecorder(BaseObserver):
    """Records a call's turns, tool calls, errors, usage and reply latency as they happen.

    Every change goes to `sink` at once (the writer queues it: nothing here waits on a
    database). What the bot said is taken where the Twilio transport passes it on, which
    is when the caller has heard it (mark echoes); a barge-in's `ReplyCutFrame` says which
    words were heard. Times are the pipeline clock's, from the call's start.

    | frame (pushed by)                         | recorded                                |
    |-------------------------------------------|-----------------------------------------|
    | caller audio (input transport)            | where the caller's voice last ended     |
    | UserStarted/StoppedSpeaking, final        | the turn's start, end, transcript time  |
    |   transcript (STT)                        |                                         |
    | LLMContextUserTurn                        | a caller turn (keys: `dtmf`)            |
    | first LLM token, first TTS audio          | the reply's milestones                  |
    | audio, text, ReplyCut, BotStopped (output | a bot turn, until the caller's next (or |
    |   transport, as heard)                    | quiet with no reply coming): its first  |
    |                                           | chunk's echo, its words, whether it was |
    |                                           | cut and where; the reply's latency      |
    | function call in progress, then its result| a tool call and its result (a withdrawn |
    |   (ReplyWithdrawn: it never ran)          |   speculative reply's: none)            |
    | ErrorFrame                                | a provider error                        |
    | MetricsFrame (usage)                      | LLM tokens, TTS characters              |
    """

    def __init__(
        self, info: CallInfo, sink: Sink, *, mask: Callable[[str], str] = str, first_seq: int = 1
    ):
        """Record the call `info` into `sink`; `mask` hides secrets in error messages.

        Turns and events are numbered from `first_seq` (a call's later stream goes on after
        its first).
        """
        super().__init__(observe_every_push=True)
        self.info = info
        self.turns: list[Turn] = []
        self.events: list[Event] = []
        self._sink = sink
        self._mask = mask
        self._seq = first_seq - 1
        self._voice_end: float | None = None  # end of the caller's last loud packet
        self._turn_started: float | None = None
        self._reply_due: dict | None = None  # milestones of the reply a caller turn awaits
        self._transcript: float | None = None
        self._first_token: float | None = None
        self._first_audio: float | None = None
        self._response_open = False  # an LLM response whose first token has not come
        self._synthesis_open = False  # … whose first audio has not come
        self._streaming = False  # an LLM response is under way
        self._bot: Turn | None = None  # the bot turn being heard
        self._tools: dict[str, Event] = {}
        self._last_at_ms = 0  # the last frame's time

    async def on_push_frame(self, data: FramePushed):
        """Take what `data`'s frame says about the call, once, where it says it."""
        frame, source, t = data.frame, data.source, data.timestamp / 1e9
        self._last_at_ms = _ms(t)
        down = data.direction == FrameDirection.DOWNSTREAM
        if isinstance(source, BaseOutputTransport) and down:
            self._heard(frame, t)
        elif isinstance(frame, InputAudioRawFrame) and isinstance(source, BaseInputTransport):
            self._caller_audio(frame, t, isinstance(data.destination, STTService))
        elif not data.first_push or not down:
            if data.first_push and isinstance(frame, ErrorFrame):
                self._error(frame, t)
            return
        elif isinstance(frame, ReplyWithdrawnFrame):  # a speculative reply's tools never ran
            for tool_call_id in frame.refused_tool_calls:
                self._tools.pop(tool_call_id, None)
        elif isinstance(frame, UserStartedSpeakingFrame):
            self._turn_started = t
        elif isinstance(frame, UserStoppedSpeakingFrame):
            self._caller_turn_ended(t)
        elif isinstance(frame, TranscriptionFrame) and isinstance(source, STTService):
            self._transcript = t
        elif isinstance(frame, LLMContextUserTurnFrame):
            self._caller_turn(frame.text, t)
        elif isinstance(source, LLMService):
            self._from_llm(frame, t)
        elif isinstance(frame, TTSAudioRawFrame) and isinstance(source, TTSService):
            if self._synthesis_open:
                self._first_audio, self._synthesis_open = t, False
        if isinstance(frame, MetricsFrame):
            self._usage(frame)
        elif isinstance(frame, ErrorFrame):
            self._error(frame, t)

    def event(self, kind: str, name: str, detail: dict) -> None:
        """Record what the server did with the call (a transfer), at the pipeline's clock."""
        at = self._last_at_ms
        self._add(Event(self._next(), kind, name, at, detail))

    def finish(self) -> None:
        """The call is over: a bot turn still open is recorded as heard so far."""
        if self._bot:
            self._close_bot_turn()
        for event in self._tools.values():  # still running when the call ended
            event.detail["unfinished"] = True
            self._add(event)
        self._sink(self.info)

    # -- the caller ---------------------------------------------------------------------------

    def _caller_audio(self, frame: InputAudioRawFrame, t: float, to_stt: bool) -> None:
        seconds = len(frame.audio) / 2 / frame.sample_rate / frame.num_channels
        if to_stt:
            self.info.usage.stt_audio_secs += seconds
        quiet = _quiet_packets_after_voice(frame)
        if quiet is not None:  # the frame came as its last packet's audio began
            self._voice_end = t + PACKET_SECS * (1 - quiet)

    def _caller_turn_ended(self, t: float) -> None:
        if self._voice_end is not None:
            self._reply_due = {"voice_end": self._voice_end, "turn_end": t}

    def _caller_turn(self, text: str, t: float) -> None:
        keys = None
        if text.startswith(KEYS_PREFIX):
            keys = text.removeprefix(KEYS_PREFIX).replace(" ", "")
        started = t if keys is not None or self._turn_started is None else self._turn_started
        if keys is not None:  # the entry's last key: the reply is timed from it
            self._reply_due = {"voice_end": t, "turn_end": t}
        self._turn_started = None
        if self._bot:  # the caller's turn ends the bot's
            self._close_bot_turn()
        self._add(Turn(self._next(), "caller", text, _ms(started), dtmf=keys))

    # -- the bot ------------------------------------------------------------------------------

    def _from_llm(self, frame, t: float) -> None:
        if isinstance(frame, LLMFullResponseStartFrame):
            self._response_open = self._synthesis_open = self._streaming = True
        elif isinstance(frame, LLMFullResponseEndFrame):
            self._streaming = False
        elif isinstance(frame, LLMTextFrame) and self._response_open:
            self._first_token, self._response_open = t, False
        elif isinstance(frame, FunctionCallInProgressFrame):
            detail = {"arguments": frame.arguments, "result": None}
            event = Event(self._next(), "tool_call", frame.function_name, _ms(t), detail)
            self._tools[frame.tool_call_id] = event  # recorded once it has run
        elif isinstance(frame, FunctionCallResultFrame) and frame.tool_call_id in self._tools:
            event = self._tools.pop(frame.tool_call_id)
            event.detail["result"] = frame.result
            if frame.error:
                event.detail["error"] = frame.error
            self._add(event)

    def _heard(self, frame, t: float) -> None:
        """A frame the output transport passes on: the caller has heard what came before it."""
        if isinstance(frame, OutputAudioRawFrame) and frame.audio:
            if self._bot is None or self._bot.at_ms < 0:
                self._bot_turn_heard(t - len(frame.audio) / 2 / frame.sample_rate)
        elif isinstance(frame, TTSTextFrame) and frame.text.strip():
            bot = self._bot or self._open_bot_turn(-1)
            bot.text = f"{bot.text} {frame.text.strip()}".strip()
            bot.heard = bot.text
            self._add(bot)
        elif isinstance(frame, ReplyCutFrame):
            self._cut(frame, t)
        elif isinstance(frame, BotStoppedSpeakingFrame) and self._bot and not self._streaming:
            self._close_bot_turn()  # quiet with no reply on its way (a pause is not an end)

    def _cut(self, cut: ReplyCutFrame, t: float) -> None:
        """A barge-in cut the reply playing: its words, and which of them were heard.

        The bot turn may hold earlier replies before the cut one (a filler line, a second
        reply): those stay as they were heard.
        """
        bot = self._bot or self._last_bot_turn_of(cut) or self._open_bot_turn(_ms(t))
        self._bot = bot
        start = bot.text.find(cut.spoken[:20]) if cut.spoken else -1
        before = bot.text[:start] if start >= 0 else bot.text
        bot.text = f"{before} {cut.spoken}".strip()
        bot.heard = f"{before} {cut.heard}".strip()
        bot.interrupted = True
        self._close_bot_turn()

    def _last_bot_turn_of(self, cut: ReplyCutFrame) -> Turn | None:
        """The last turn, if it is the bot's and holds the cut reply's start.

        The bot's audio may have stopped just before the cut reached here (its stop comes
        out ahead of the cut), which closed its turn.
        """
        last = self.turns[-1] if self.turns else None
        if last and last.speaker == "bot" and cut.spoken and cut.spoken[:20] in last.text:
            return last
        return None

    def _bot_turn_heard(self, heard: float) -> None:
        """The first audio of a bot turn was heard at `heard`: open it, time the reply."""
        bot = self._bot or self._open_bot_turn(-1)
        bot.at_ms = _ms(heard)
        if due := self._reply_due:
            bot.latency_ms, bot.stages = reply_latency(
                due["voice_end"],
                transcript=self._transcript if self._transcript else None,
                turn_end=due["turn_end"],
                first_token=self._first_token,
                first_audio=self._first_audio,
                heard=heard,
            )
            self._reply_due = None
        if bot.text:
            self._add(bot)

    def _open_bot_turn(self, at_ms: int) -> Turn:
        self._bot = Turn(self._next(), "bot", "", at_ms, heard="")
        return self._bot

    def _close_bot_turn(self) -> None:
        bot, self._bot = self._bot, None
        assert bot is not None
        if not bot.text:  # audio with no words (the tail of a cut reply): not a turn
            return
        if bot.at_ms < 0:  # words with no audio heard after them
            bot.at_ms = self.turns[-1].at_ms if self.turns else 0
        self._add(bot)
        self._sink(self.info)  # the usage so far

    # -- the rest -----------------------------------------------------------------------------

    def _usage(self, frame: MetricsFrame) -> None:
        usage = self.info.usage
        for data in frame.data:
            if isinstance(data, LLMUsageMetricsData):
                usage.llm_prompt_tokens += data.value.prompt_tokens
                usage.llm_completion_tokens += data.value.completion_tokens
            elif isinstance(data, TTSUsageMetricsData):
                usage.tts_characters += data.value

    def _error(self, frame: ErrorFrame, t: float) -> None:
        provider = frame.processor.name if frame.processor else "pipeline"
        category = frame.category.value if frame.category else None
        detail = {"error": self._mask(frame.error)[:300], "category": category}
        self._add(Event(self._next(), "error", provider, _ms(t), detail))

    def _add(self, item: Turn | Event) -> None:
        collection: list = self.turns if isinstance(item, Turn) else self.events
        if not any(known is item for known in collection):
            collection.append(item)
        self._sink(item)

    def _next(self) -> int:
        self._seq += 1
        return self._seq


def _ms(t: float) -> int:
    return round(t * 1000)


def _quiet_packets_after_voice(frame: InputAudioRawFrame) -> int | None:
    """How many of the frame's packets follow its last voiced one; None if none is voiced."""
    samples = np.frombuffer(frame.audio, dtype=np.int16).astype(np.float32)
    size = round(PACKET_SECS * frame.sample_rate) * frame.num_channels
    count = len(samples) // size
    if not count:
        return None
    packets = samples[-count * size :].reshape(count, size)
    loud = np.flatnonzero(np.einsum("ij,ij->i", packets, packets) > VOICE_RMS**2 * size)
    return count - 1 - int(loud[-1]) if len(loud) else None
