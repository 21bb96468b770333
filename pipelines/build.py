"""Build one call's Pipecat pipeline from its declaration: a pure function, no I/O."""

from dataclasses import dataclass

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.llm_service import LLMService
from pipecat.transports.base_transport import BaseTransport
from pipecat.turns.user_start import MinWordsUserTurnStartStrategy
from pipecat.turns.user_stop import (
    BaseUserTurnStopStrategy,
    ExternalUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import ExternalUserTurnStrategies, UserTurnStrategies

from models.silero_vad import SharedSileroVADAnalyzer
from models.smart_turn import SharedSmartTurnAnalyzerV3
from pipelines.declaration import Declaration, Stage, Turn
from pipelines.provider import ProviderAccess, ProviderContext
from pipelines.transfer import transfer_tool
from processors.call_time_limit import CallTimeLimit
from processors.caller_audio_sink import CallerAudioSink
from processors.greeting_player import GreetingPlayer, SpokenSentence
from processors.hand_off import HandOff, HandOffHandler
from processors.heard_context import HeardContext
from processors.keypad import KeyAction, Keypad
from processors.llm_failure_apology import LLMFailureApology
from processors.reply_ahead import ReplyAhead, ToolHandler
from processors.reply_hold import ReplyHold
from processors.reply_repeater import ReplyRepeater
from processors.silent_caller import SilentCaller
from telephony.lifecycle import CallLifecycle
from turns.ending_mute import EndingCallMuteStrategy
from turns.guarded_external_start import GuardedExternalUserTurnStartStrategy
from turns.min_speech_start import MinSpeechUserTurnStartStrategy
from turns.screening_mute import ScreeningMuteStrategy
from turns.silence_stop import SilenceTimedTurnStopStrategy
from turns.smart_turn_stop import SmartTurnStop
from turns.speculation import EagerFluxTurnStop, SpeculativeSilenceStop, SpeculativeSmartTurnStop

SAMPLE_RATE = 8000  # the phone network's rate, end to end: nothing resamples
AUDIO_IDLE_SECS = 3.0  # no caller audio this long while they speak: their speech has stopped

END_CALL = FunctionSchema(
    name="end_call",
    description="Hang up. Call it when the caller is done; the bot says its farewell itself.",
    properties={},
    required=[],
)


@dataclass
class CallPipeline:
    """A call's pipeline and the parts the entry point wires events to."""

    pipeline: Pipeline
    context: LLMContext
    llm: LLMService
    reply_ahead: ReplyAhead | None = None
    keypad: Keypad | None = None

    def register_tool(self, name: str, handler: ToolHandler, **kwargs) -> None:
        """`handler` runs `name` for the LLM (`register_function`'s options in `kwargs`).

        With speculative replies, only for a reply that answers a turn that ended.
        """
        if self.reply_ahead:
            handler = self.reply_ahead.guard(handler)
        self.llm.register_function(name, handler, **kwargs)

    def register_key_action(self, name: str, action: KeyAction) -> None:
        """`action` runs when the caller presses a key `[keypad] shortcuts` maps to `name`."""
        if self.keypad is None:
            raise ValueError(f"this pipeline takes no keypad shortcuts (registering {name!r})")
        self.keypad.actions[name] = action


def build_pipeline(
    declaration: Declaration,
    transport: BaseTransport,
    access: ProviderAccess,
    lifecycle: CallLifecycle,
    greeting: list[SpokenSentence] | None = None,
    hand_off: HandOffHandler | None = None,
) -> CallPipeline:
    """Transport in → turn detection → STT → context → LLM → TTS → transport out → context.

    `lifecycle` is the call's: what ends the call claims it, and the caller is muted then.
    With `greeting` (pre-synthesized), the greeting plays the moment the pipeline starts.
    `hand_off` transfers the call once the caller has heard the hand-off line (`HandOff`).
    A `[speech_to_speech]` declaration is built by `pipelines/speech_to_speech.py`.
    """
    if declaration.speech_to_speech:
        from pipelines.speech_to_speech import build_speech_to_speech  # (it imports this module)

        return build_speech_to_speech(declaration, transport, access, lifecycle, hand_off)
    assert declaration.stt and declaration.llm and declaration.tts, "a cascaded pipeline"
    vad = vad_analyzer(declaration.turn)
    context = tool_context(declaration)
    strategies = turns(declaration, vad, context)
    context, aggregators = call_context(declaration, strategies, lifecycle, vad, context)
    llm = make_service(declaration.llm, declaration, access)
    ahead = ReplyAhead() if declaration.turn.speculative else None
    keypad = make_keypad(declaration, context, lifecycle)
    pipeline = Pipeline(
        [
            transport.input(),  # Twilio media → 8 kHz PCM frames, key presses
            make_service(declaration.stt, declaration, access),  # PCM → transcripts
            aggregators.user(),  # VAD + turn strategy → the caller's turn into the context
            CallerAudioSink(),  # the caller's audio goes no further
            keypad,  # keys: a barge-in at once; an entry → one turn into the context
            *limits(declaration, lifecycle),  # a silent caller, a call too long: say, hang up
            LLMFailureApology(llm, declaration.bot.apology),  # a failed turn → an apology
            *([ahead] if ahead else []),  # a speculative reply goes on to the TTS, marked
            llm,  # context → streamed tokens
            ReplyRepeater(declaration.bot.greeting),  # the last reply, said again on request
            make_service(declaration.tts, declaration, access),  # sentences → 8 kHz PCM
            *([ReplyHold()] if ahead else []),  # … and waits here for the turn's end
            *([GreetingPlayer(greeting)] if greeting else []),  # cached greeting on start
            transport.output(),  # PCM → the phone; passes text on as it is heard, pauses
            # on caller speech, cuts on a barge-in (ReplyCut: the words heard)
            *hand_offs(hand_off),  # the hand-off line heard → Twilio takes the call over
            HeardContext(),  # a cut reply → the words the caller heard, into the context
            aggregators.assistant(),  # what the caller heard → the context
        ]
    )
    return CallPipeline(
        pipeline=pipeline, context=context, llm=llm, reply_ahead=ahead, keypad=keypad
    )


def call_context(
    declaration: Declaration,
    strategies: UserTurnStrategies,
    lifecycle: CallLifecycle,
    vad: SharedSileroVADAnalyzer,
    context: LLMContext | None = None,
) -> tuple[LLMContext, LLMContextAggregatorPair]:
    """A call's LLM context (`context`, or a new `tool_context`) and the aggregators that fill it.

    The user side runs `vad` and `strategies`; the caller is muted once the call is ending,
    and the callee of an outbound call until Twilio says who answered.
    """
    context = context or tool_context(declaration)
    user_params = LLMUserAggregatorParams(
        vad_analyzer=vad,
        user_turn_strategies=strategies,
        user_mute_strategies=[EndingCallMuteStrategy(lifecycle), ScreeningMuteStrategy(lifecycle)],
        # Twilio sends the caller's line without a break until the call ends: audio missing
        # for pipecat's 1 s default means a busy server, and a forced stop would end the
        # caller's turn mid-sentence (seen under load: an utterance sent to the STT in two).
        audio_idle_timeout=AUDIO_IDLE_SECS,
    )
    return context, LLMContextAggregatorPair(context, user_params=user_params)


def tool_context(declaration: Declaration) -> LLMContext:
    """An empty context offering the LLM `end_call`, the transfer and the declared HTTP tools."""
    transfer = [transfer_tool(declaration.transfers)] if declaration.transfers else []
    tools = [END_CALL, *transfer, *(tool.schema() for tool in declaration.tools)]
    return LLMContext(tools=ToolsSchema(standard_tools=tools))


def make_keypad(declaration: Declaration, context: LLMContext, lifecycle: CallLifecycle) -> Keypad:
    """The call's keypad as `[keypad]` declares it."""
    keypad = declaration.keypad
    return Keypad(
        context,
        lifecycle,
        end_key=keypad.end_key,
        max_digits=keypad.max_digits,
        pause_secs=keypad.pause_secs,
        shortcuts=keypad.shortcuts,
    )


def hand_offs(hand_off: HandOffHandler | None) -> list[FrameProcessor]:
    """`HandOff` for a call whose pipeline can transfer it, else nothing."""
    return [HandOff(hand_off)] if hand_off else []


def limits(
    declaration: Declaration, lifecycle: CallLifecycle, *, answers_every_turn: bool = False
) -> list[FrameProcessor]:
    """The call's [call] limits: a caller silent too long, a call lasting too long."""
    bot, call = declaration.bot, declaration.call
    return [
        CallTimeLimit(lifecycle, time_up=bot.time_up, max_secs=call.max_secs),
        SilentCaller(
            lifecycle,
            prompt=bot.silence_prompt,
            goodbye=bot.silence_goodbye,
            prompt_secs=call.silence_prompt_secs,
            goodbye_secs=call.silence_goodbye_secs,
            answers_every_turn=answers_every_turn,
        ),
    ]


def make_service(stage: Stage, declaration: Declaration, access: ProviderAccess):
    """The declared provider of `stage`, configured for this bot."""
    context = ProviderContext(
        access=access,
        system_prompt=declaration.bot.system_prompt,
        language=declaration.bot.language,
        sample_rate=SAMPLE_RATE,
        speculative=declaration.turn.speculative,
    )
    return stage.provider.make(stage.options, context)


def vad_analyzer(turn: Turn) -> SharedSileroVADAnalyzer:
    """The call's Silero VAD at the declared [turn] settings."""
    params = VADParams(
        confidence=turn.vad_confidence,
        start_secs=turn.vad_start_secs,
        stop_secs=turn.vad_stop_secs,
        min_volume=turn.vad_min_volume,
    )
    return SharedSileroVADAnalyzer(sample_rate=SAMPLE_RATE, params=params)


def turns(
    declaration: Declaration,
    vad: SharedSileroVADAnalyzer | None = None,
    context: LLMContext | None = None,
) -> UserTurnStrategies:
    """When the caller's turn starts and ends, as the declaration's [turn] says.

    Given the call's `vad` (its windows say when the caller falls silent) and `context`, a
    cascade with `speculative` on answers the caller's pauses ahead (with Flux: its eager end
    of turn); a speech-to-speech service answers only the turns it is given.
    """
    turn = declaration.turn
    if declaration.turn_end == "provider" and declaration.speech_to_speech:
        return ExternalUserTurnStrategies()  # OpenAI's server VAD cuts its reply itself
    if declaration.turn_end == "provider":  # Flux: its turns, our barge-in thresholds
        guarded = GuardedExternalUserTurnStartStrategy(
            min_speech_secs=turn.min_barge_in_secs, min_words=turn.min_barge_in_words
        )
        stop = EagerFluxTurnStop() if turn.speculative else ExternalUserTurnStopStrategy()
        return UserTurnStrategies(start=[guarded], stop=[stop])
    speculates = turn.speculative and not declaration.speech_to_speech
    speculation = _speculation(turn, vad, context) if speculates and vad and context else None
    # Explicit stop strategy: the default loads a Smart Turn model per call (~44 MB).
    return UserTurnStrategies(
        start=[
            MinSpeechUserTurnStartStrategy(min_speech_secs=turn.min_barge_in_secs),
            MinWordsUserTurnStartStrategy(min_words=turn.min_barge_in_words),
        ],
        stop=[_turn_stop(turn, declaration.turn_end, speculation, declaration.bot.language)],
    )


def _turn_stop(
    turn: Turn, end: str, speculation: dict | None = None, language: str = ""
) -> BaseUserTurnStopStrategy:
    """The strategy that ends the turn; with `speculation`, it answers the caller's pauses.

    `language`: the caller's, for the strategies that read their words (`words_end`).
    """
    if end == "smart-turn":
        # Smart Turn's own silence limit only bounds the audio it keeps: the wait is ours.
        params = SmartTurnParams(stop_secs=turn.vad_stop_secs + turn.smart_turn_max_secs + 1)
        judged = {
            "turn_analyzer": SharedSmartTurnAnalyzerV3(sample_rate=SAMPLE_RATE, params=params),
            "complete_secs": turn.smart_turn_complete_secs,
            "incomplete_secs": turn.smart_turn_max_secs,
            "unsure_secs": turn.user_speech_timeout,
            "unfinished_below": turn.smart_turn_unfinished_below,
            "language": language,
        }
        if speculation:
            return SpeculativeSmartTurnStop(**judged, **speculation)
        return SmartTurnStop(**judged)
    if speculation:
        timeout = turn.user_speech_timeout
        return SpeculativeSilenceStop(user_speech_timeout=timeout, language=language, **speculation)
    return SilenceTimedTurnStopStrategy(user_speech_timeout=turn.user_speech_timeout)


def _speculation(turn: Turn, vad: SharedSileroVADAnalyzer, context: LLMContext) -> dict:
    return {
        "vad": vad,
        "context": context,
        "pause_secs": turn.speculate_after_secs,
        "sentence_pause_secs": turn.speculate_after_sentence_secs,
        "resume_secs": turn.vad_start_secs,
        "max_per_turn": turn.max_speculative_replies,
    }
