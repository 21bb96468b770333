"""RealtimeLLMService against the OpenAI Realtime stand-in: frames in, frames and events out."""

import time

from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    EndWorkerFrame,
    ErrorFrame,
    FunctionCallResultFrame,
    FunctionCallResultProperties,
    InputAudioRawFrame,
    InterruptionFrame,
    ProposedUserStartedSpeakingFrame,
    ProposedUserStoppedSpeakingFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import FunctionCallParams
from pipecat.services.openai.realtime import events
from pipecat.tests.utils import SleepFrame, run_test

from pipelines.build import END_CALL
from pipelines.provider import ProviderAccess, ProviderContext
from pipelines.providers.openai_realtime import RealtimeOptions, make_realtime
from recordings import RECORDINGS
from services.openai_realtime import FAREWELL_TIMEOUT_SECS, RealtimeLLMService
from standins.audio import pcm_to_ulaw, read_wav, ulaw_to_pcm
from standins.openai_realtime import OpenAIRealtimeStandIn
from standins.openai_replies import LONG_REPLY, Reply, ToolCall, fixed_reply
from standins.script import BOOK_TABLE, BOOKING_REPLY
from standins.speech import synthesize
from telephony.frames import MulawAudioFrame, ReplyCutFrame


def service(
    stand_in: OpenAIRealtimeStandIn,
    *,
    context: LLMContext | None = None,
    turn_detection: events.TurnDetection | None = None,
) -> RealtimeLLMService:
    """The service as the realtime pipeline builds it, pointed at the stand-in."""
    access = ProviderAccess(
        {"OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": f"{stand_in.http_url}/v1"}
    )
    bot = ProviderContext(access=access, system_prompt="You take bookings.", language="en")
    llm = make_realtime(RealtimeOptions(), bot)
    llm.join_call(context=context or LLMContext(), turn_detection=turn_detection)
    return llm


def caller_frames(ulaw: bytes) -> list[MulawAudioFrame]:
    """The caller's μ-law as the Twilio serializer hands it on: 20 ms of 8 kHz PCM and bytes."""
    chunks = [ulaw[i : i + 160] for i in range(0, len(ulaw), 160)]
    return [MulawAudioFrame(ulaw_to_pcm(chunk), 8000, 1, ulaw=chunk) for chunk in chunks]


def audio(frames) -> bytes:
    return b"".join(f.audio for f in frames if isinstance(f, TTSAudioRawFrame))


async def test_the_callers_mulaw_reaches_openai_unchanged_and_its_mulaw_comes_back_at_8khz():
    ulaw = pcm_to_ulaw(read_wav(RECORDINGS / "book_table.wav"))
    async with OpenAIRealtimeStandIn() as stand_in:
        llm = service(stand_in)
        frames = [*caller_frames(ulaw), UserStoppedSpeakingFrame(), SleepFrame(1.5)]
        down, _ = await run_test(llm, frames_to_send=frames)

    (conn,) = stand_in.connections
    assert bytes(conn.audio) == ulaw, "the same bytes, none resampled, none lost"
    assert conn.session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert [commit.transcript for commit in conn.commits] == [BOOK_TABLE]
    (response,) = conn.responses
    assert response.reply.text == BOOKING_REPLY
    spoken = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert {(f.sample_rate, f.num_channels) for f in spoken} == {(8000, 1)}
    assert pcm_to_ulaw(audio(down)) == bytes(response.audio), "OpenAI's μ-law, byte for byte"
    kinds = [type(f) for f in down]
    assert kinds.index(TTSStartedFrame) < kinds.index(TTSAudioRawFrame)
    assert kinds.index(TTSStoppedFrame) > len(kinds) - 1 - kinds[::-1].index(TTSAudioRawFrame)


async def test_a_speak_frame_is_said_word_for_word_and_the_end_waits_for_it():
    async with OpenAIRealtimeStandIn() as stand_in:
        llm = service(stand_in)
        frames = [TTSSpeakFrame("Goodbye now."), EndWorkerFrame(reason="done"), SleepFrame(1.0)]
        down, _ = await run_test(llm, frames_to_send=frames)

    (response,) = stand_in.connections[0].responses
    assert (
        response.instructions == 'Say exactly this, word for word, and nothing else: "Goodbye now."'
    )
    assert audio(down) == ulaw_to_pcm(pcm_to_ulaw(synthesize("Goodbye now.").pcm))
    kinds = [type(f) for f in down]
    assert TTSSpeakFrame not in kinds, "spoken by OpenAI, not passed on to a TTS"
    assert kinds[-1] is EndWorkerFrame
    assert kinds.index(TTSStoppedFrame) < kinds.index(EndWorkerFrame)


class CutAt(FrameProcessor):
    """The transport's part: an interruption cuts the reply where the caller had heard to."""

    def __init__(self, heard_ms: float):
        super().__init__()
        self._heard_ms = heard_ms

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, InterruptionFrame):
            cut = ReplyCutFrame(heard="Tonight", spoken=LONG_REPLY, heard_ms=self._heard_ms)
            await self.push_frame(cut, FrameDirection.UPSTREAM)


async def test_an_interruption_cancels_the_reply_and_truncates_it_where_the_caller_was():
    stand_in = OpenAIRealtimeStandIn(responder=fixed_reply(LONG_REPLY), realtime_factor=1.0)
    async with stand_in:
        llm = service(stand_in)
        frames = [TTSSpeakFrame(LONG_REPLY), SleepFrame(1.2), InterruptionFrame(), SleepFrame(0.6)]
        down, _ = await run_test(Pipeline([llm, CutAt(heard_ms=420.0)]), frames_to_send=frames)

    conn = stand_in.connections[0]
    (response,) = conn.responses
    (truncation,) = conn.truncations
    assert (truncation.item_id, truncation.audio_end_ms) == (response.item_id, 420)
    assert response.audio_ms > 1000, "OpenAI had sent far more than the caller heard"
    assert conn.cancels == [response.id] and response.status == "cancelled"
    after = down[[type(f) for f in down].index(InterruptionFrame) :]
    assert not [f for f in after if isinstance(f, TTSAudioRawFrame)], "late deltas dropped"


async def test_an_error_event_is_logged_and_the_session_goes_on(log_lines):
    async with OpenAIRealtimeStandIn() as stand_in:
        llm = service(stand_in)
        frames = [
            SleepFrame(0.2),
            UserStoppedSpeakingFrame(),  # commits an empty buffer: OpenAI refuses
            SleepFrame(0.5),
            TTSSpeakFrame("Still here."),
            SleepFrame(1.0),
        ]
        down, _ = await run_test(llm, frames_to_send=frames)

    conn = stand_in.connections[0]
    assert conn.errors[0]["code"] == "input_audio_buffer_commit_empty"
    assert any("input_audio_buffer_commit_empty" in line for line in log_lines)
    assert conn.responses[-1].reply.text == "Still here." and conn.responses[-1].audio
    assert audio(down).endswith(ulaw_to_pcm(pcm_to_ulaw(synthesize("Still here.").pcm)))


async def test_audio_that_is_not_8khz_mono_is_refused_with_an_error_naming_it():
    async with OpenAIRealtimeStandIn() as stand_in:
        llm = service(stand_in)
        frames = [SleepFrame(0.2), InputAudioRawFrame(bytes(640), 16000, 1), SleepFrame(0.2)]
        _, up = await run_test(llm, frames_to_send=frames)

    errors = [f.error for f in up if isinstance(f, ErrorFrame)]
    assert len(errors) == 1 and "16000 Hz" in errors[0]
    assert stand_in.connections[0].appends == 0


async def test_a_function_call_runs_the_registered_handler_and_its_result_answers_the_call():
    ulaw = pcm_to_ulaw(read_wav(RECORDINGS / "book_table.wav"))
    stand_in = OpenAIRealtimeStandIn(responder=lambda *_: Reply(tool_calls=[ToolCall("end_call")]))
    calls: list[str] = []

    async def end_call(params: FunctionCallParams):
        calls.append(params.function_name)
        no_reply = FunctionCallResultProperties(run_llm=False)
        await params.result_callback({"ended": True}, properties=no_reply)

    async with stand_in:
        context = LLMContext(tools=ToolsSchema(standard_tools=[END_CALL]))
        llm = service(stand_in, context=context)
        llm.register_function("end_call", end_call)
        frames = [*caller_frames(ulaw), UserStoppedSpeakingFrame(), SleepFrame(1.0)]
        down, _ = await run_test(llm, frames_to_send=frames)

    conn = stand_in.connections[0]
    assert [tool["name"] for tool in conn.session["tools"]] == ["end_call"]
    assert calls == ["end_call"]
    added = [e["item"] for e in conn.sent_of("conversation.item.added")]
    (call,) = [item for item in added if item["type"] == "function_call"]
    outputs = [e["item"] for e in conn.received if e["type"] == "conversation.item.create"]
    assert [(o["type"], o["call_id"], o["output"]) for o in outputs] == [
        ("function_call_output", call["call_id"], '{"ended": true}')
    ]
    (result,) = [f for f in down if isinstance(f, FunctionCallResultFrame)]
    assert result.tool_call_id == call["call_id"]
    assert len(conn.responses) == 1, "run_llm=False: no response to the result"


async def test_with_server_vad_openai_ends_the_turn_and_its_speech_events_are_proposed():
    ulaw = pcm_to_ulaw(read_wav(RECORDINGS / "book_table.wav")) + b"\xff" * 8000  # 1 s quiet
    async with OpenAIRealtimeStandIn() as stand_in:
        llm = service(stand_in, turn_detection=events.TurnDetection(silence_duration_ms=500))
        down, up = await run_test(llm, frames_to_send=[*caller_frames(ulaw), SleepFrame(1.5)])

    conn = stand_in.connections[0]
    assert conn.session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert "input_audio_buffer.commit" not in [e["type"] for e in conn.received]
    assert [commit.transcript for commit in conn.commits] == [BOOK_TABLE]
    (response,) = conn.responses
    assert pcm_to_ulaw(audio(down)) == bytes(response.audio)
    proposed = [ProposedUserStartedSpeakingFrame, ProposedUserStoppedSpeakingFrame]
    assert [type(f) for f in up if type(f) in proposed] == proposed
    assert [type(f) for f in down if type(f) in proposed] == proposed


async def test_a_lost_session_is_an_error_and_the_end_does_not_wait_for_words_never_said():
    async with OpenAIRealtimeStandIn(api_key="another-key") as stand_in:  # refuses ours
        llm = service(stand_in)
        frames = [TTSSpeakFrame("Goodbye now."), EndWorkerFrame(reason="done"), SleepFrame(1.0)]
        started = time.monotonic()
        down, up = await run_test(llm, frames_to_send=frames)

    assert time.monotonic() - started < FAREWELL_TIMEOUT_SECS
    (error,) = [f for f in up if isinstance(f, ErrorFrame)]
    assert "closed the session" in error.error and not llm.is_usable
    assert stand_in.connections[0].responses == []
    assert [type(f) for f in down][-1] is EndWorkerFrame
