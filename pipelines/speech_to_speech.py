"""Build one call's speech-to-speech pipeline (OpenAI Realtime) from its declaration."""

from pipecat.pipeline.pipeline import Pipeline
from pipecat.services.openai.realtime import events
from pipecat.transports.base_transport import BaseTransport
from pipecat.turns.user_start import (
    BaseUserTurnStartStrategy,
    MinWordsUserTurnStartStrategy,
    TranscriptionUserTurnStartStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from pipelines.build import (
    CallPipeline,
    call_context,
    hand_offs,
    limits,
    make_service,
    turns,
    vad_analyzer,
)
from pipelines.declaration import Declaration
from pipelines.provider import ProviderAccess
from processors.hand_off import HandOffHandler
from processors.heard_context import HeardContext
from services.openai_realtime import RealtimeLLMService
from telephony.lifecycle import CallLifecycle

PREFIX_PADDING_MS = 300  # server VAD: speech kept from before it fired (OpenAI's default)


def build_speech_to_speech(
    declaration: Declaration,
    transport: BaseTransport,
    access: ProviderAccess,
    lifecycle: CallLifecycle,
    hand_off: HandOffHandler | None = None,
) -> CallPipeline:
    """Transport in → turn detection → the speech-to-speech service → transport out → context.

    No greeting is pre-synthesized: the service speaks it in its own voice, into its own
    conversation, when server/call.py queues it as text.
    """
    stage = declaration.speech_to_speech
    assert stage, "a speech-to-speech pipeline"
    vad = vad_analyzer(declaration.turn)
    context, aggregators = call_context(declaration, _local_turns(declaration), lifecycle, vad)
    llm = make_service(stage, declaration, access)
    if not isinstance(llm, RealtimeLLMService):
        raise TypeError(f"{stage.provider.name!r} is not a speech-to-speech service")
    llm.join_call(context=context, turn_detection=_server_turns(declaration))
    pipeline = Pipeline(
        [
            transport.input(),  # Twilio media → 8 kHz PCM frames (and Twilio's μ-law bytes)
            # A silent caller, a call too long (the service answers every turn itself). Before
            # the user aggregator, which broadcasts turn frames both ways: between it and the
            # service they would delay the transcripts it must have when a reply starts.
            *limits(declaration, lifecycle, answers_every_turn=True),
            aggregators.user(),  # VAD + turn strategy → turn frames, interruptions, mute
            llm,  # the caller's μ-law → OpenAI (kept there) → its μ-law → 8 kHz PCM
            transport.output(),  # PCM → the phone; ReplyCut ↑ tells the service what was heard
            *hand_offs(hand_off),  # the hand-off line heard → Twilio takes the call over
            HeardContext(),  # a cut reply → the words the caller heard, into the record
            aggregators.assistant(),  # what the caller heard → the call's record
        ]
    )
    return CallPipeline(pipeline=pipeline, context=context, llm=llm)


def _local_turns(declaration: Declaration) -> UserTurnStrategies:
    """The cascade's turn strategies, minus what needs a transcript during the turn.

    The service transcribes the caller's turn only once it is committed: a transcript cannot
    confirm a barge-in (it would start a new turn and cut the reply to the turn it ends).
    """
    strategies = turns(declaration)
    strategies.start = [s for s in strategies.start or [] if not _needs_transcripts(s)]
    for stop in strategies.stop or []:
        if getattr(stop, "wait_for_transcript", False):
            stop.wait_for_transcript = False
    return strategies


def _needs_transcripts(strategy: BaseUserTurnStartStrategy) -> bool:
    return isinstance(strategy, (MinWordsUserTurnStartStrategy, TranscriptionUserTurnStartStrategy))


def _server_turns(declaration: Declaration) -> events.TurnDetection | None:
    """OpenAI's server VAD when the provider ends turns, timed like our own turn end."""
    if declaration.turn_end != "provider":
        return None
    turn = declaration.turn
    silence_ms = round((turn.vad_stop_secs + turn.user_speech_timeout) * 1000)
    return events.TurnDetection(prefix_padding_ms=PREFIX_PADDING_MS, silence_duration_ms=silence_ms)
