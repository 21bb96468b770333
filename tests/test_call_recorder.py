"""CallRecorder: the call's frames, where they are pushed, in; the call's record out."""

import numpy as np
from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
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
from pipecat.metrics.metrics import LLMTokenUsage, LLMUsageMetricsData, TTSUsageMetricsData
from pipecat.observers.base_observer import FramePushed
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import LLMService
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import TransportParams

from records.record import CallInfo, Event, Stages, Turn
from records.recorder import CallRecorder
from telephony.frames import ReplyCutFrame
from turns.frames import ReplyWithdrawnFrame


class Stt(STTService):
    async def run_stt(self, audio):
        yield None


class Tts(TTSService):
    async def run_tts(self, text, context_id):
        yield None


INPUT, OUTPUT = BaseInputTransport(TransportParams()), BaseOutputTransport(TransportParams())
STT, LLM, TTS, OTHER = Stt(), LLMService(), Tts(), FrameProcessor()
DOWN, UP = FrameDirection.DOWNSTREAM, FrameDirection.UPSTREAM
LOUD = (np.full(160, 3000, dtype=np.int16)).tobytes()  # 20 ms of voice
QUIET = bytes(320)


class Recorded:
    """A recorder and everything it sent its sink."""

    def __init__(self) -> None:
        self.sunk: list[CallInfo | Turn | Event] = []
        self.recorder = CallRecorder(
            CallInfo("CA1", "inbound", "+1555", "+1666", "default"), self.sunk.append
        )

    async def push(self, t: float, frame: Frame, source=OTHER, direction=DOWN, destination=OTHER):
        data = FramePushed(source, destination, frame, direction, round(t * 1e9))
        await self.recorder.on_push_frame(data)


def pcm(audio: bytes) -> InputAudioRawFrame:
    return InputAudioRawFrame(audio, sample_rate=8000, num_channels=1)


def chunk() -> OutputAudioRawFrame:
    return OutputAudioRawFrame(bytes(640), sample_rate=8000, num_channels=1)  # 40 ms


async def a_cut_reply(rec: Recorded) -> None:
    """The caller speaks 1.0-2.0 s; the reply is heard from 2.96 s and cut at 3.5 s."""
    await rec.push(1.0, UserStartedSpeakingFrame())
    for i in range(75):  # 1.5 s of the caller's line: 1 s of voice, then quiet
        await rec.push(1.0 + i * 0.02, pcm(LOUD if i < 50 else QUIET), INPUT, destination=STT)
    await rec.push(2.2, TranscriptionFrame("Book a table.", "", ""), STT)
    await rec.push(2.5, UserStoppedSpeakingFrame())
    await rec.push(2.5, LLMContextUserTurnFrame("Book a table.", ""))
    await rec.push(2.5, LLMFullResponseStartFrame(), LLM)
    await rec.push(2.7, LLMTextFrame("Hello"), LLM)
    await rec.push(2.8, TTSAudioRawFrame(bytes(320), 8000, 1), TTS)
    await rec.push(2.9, TTSTextFrame("Hello there.", text_type="sentence"), OUTPUT)
    await rec.push(3.0, chunk(), OUTPUT)  # its mark echoed: heard from 2.96 s
    await rec.push(3.5, ReplyCutFrame("Hello", "Hello there.", 540), OUTPUT)


async def test_a_cut_reply_is_a_bot_turn_with_what_was_heard_and_its_latency():
    rec = Recorded()
    await a_cut_reply(rec)
    caller, bot = rec.recorder.turns
    assert (caller.speaker, caller.text, caller.at_ms, caller.dtmf) == (
        "caller",
        "Book a table.",
        1000,
        None,
    )
    assert (bot.speaker, bot.text, bot.heard, bot.interrupted) == (
        "bot",
        "Hello there.",
        "Hello",
        True,
    )
    assert bot.at_ms == 2960 and bot.latency_ms == 960  # voice ended at 2.0 s
    assert bot.stages == Stages(stt_ms=200, turn_end_ms=300, llm_ms=200, tts_ms=100, playout_ms=160)
    assert rec.recorder.info.usage.as_json()["stt_audio_secs"] == 1.5
    assert rec.sunk[-2:] == [bot, rec.recorder.info]  # written as it closed, with the usage


async def test_the_voice_ends_at_the_packet_it_ends_in_whatever_the_frame_joins():
    # The transport joins Twilio's 20 ms packets into 40 ms frames; a frame comes as its last
    # packet does. Here the voice ends with the first packet of a frame, at 1.98 s.
    rec = Recorded()
    for i in range(0, 76, 2):
        audio = b"".join(LOUD if n < 49 else QUIET for n in (i, i + 1))
        await rec.push(1.0 + (i + 1) * 0.02, pcm(audio), INPUT, destination=STT)
    await rec.push(2.5, UserStoppedSpeakingFrame())
    await rec.push(2.5, LLMContextUserTurnFrame("Book a table.", ""))
    await rec.push(2.5, LLMFullResponseStartFrame(), LLM)
    await rec.push(2.9, TTSTextFrame("Hello there.", text_type="sentence"), OUTPUT)
    await rec.push(3.0, chunk(), OUTPUT)  # heard from 2.96 s
    await rec.push(3.5, ReplyCutFrame("Hello", "Hello there.", 540), OUTPUT)
    _caller, bot = rec.recorder.turns
    assert bot.latency_ms == 980


async def test_keys_are_a_caller_turn_and_the_reply_is_timed_from_the_last_key():
    rec = Recorded()
    await rec.push(5.0, LLMContextUserTurnFrame("The caller pressed 1 2 #", ""))
    await rec.push(5.1, TTSTextFrame("Noted.", text_type="sentence"), OUTPUT)
    await rec.push(5.34, chunk(), OUTPUT)
    rec.recorder.finish()
    keys, bot = rec.recorder.turns
    assert (keys.dtmf, keys.at_ms) == ("12#", 5000)
    assert (bot.text, bot.heard, bot.interrupted, bot.latency_ms) == (
        "Noted.",
        "Noted.",
        False,
        300,
    )


async def test_tool_calls_errors_and_usage_are_recorded():
    rec = Recorded()
    args = {"date": "tomorrow"}
    await rec.push(1.0, FunctionCallInProgressFrame("check", "call-1", args), LLM)
    await rec.push(1.0, FunctionCallInProgressFrame("check", "call-2", args), LLM)
    await rec.push(1.1, ReplyWithdrawnFrame(refused_tool_calls=frozenset({"call-2"})))
    await rec.push(1.5, FunctionCallResultFrame("check", "call-1", args, {"free": True}), LLM)
    await rec.push(2.0, ErrorFrame("TTS socket closed", processor=TTS), TTS, UP)
    usage = LLMTokenUsage(prompt_tokens=100, completion_tokens=20, total_tokens=120)
    await rec.push(2.1, MetricsFrame([LLMUsageMetricsData(processor="llm", value=usage)]), LLM)
    await rec.push(2.2, MetricsFrame([TTSUsageMetricsData(processor="tts", value=42)]), TTS)
    await rec.push(2.3, LLMFullResponseEndFrame(), LLM)
    rec.recorder.finish()
    tool, error = rec.recorder.events
    assert (tool.kind, tool.name, tool.at_ms) == ("tool_call", "check", 1000)
    assert tool.detail == {"arguments": args, "result": {"free": True}}
    assert (error.kind, error.name, error.detail["error"]) == (
        "error",
        TTS.name,
        "TTS socket closed",
    )
    usage_json = rec.recorder.info.usage.as_json()
    assert (usage_json["llm_tokens"], usage_json["tts_characters"]) == (120, 42)
