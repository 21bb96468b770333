"""One phone call: its pipeline, its greeting, its ending, its hang-up."""

from dataclasses import dataclass, field

from fastapi import WebSocket
from loguru import logger
from pipecat.frames.frames import FunctionCallResultProperties, TTSSpeakFrame
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.llm_service import FunctionCallParams
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.workers.runner import WorkerRunner

from pipelines.build import END_CALL, SAMPLE_RATE, build_pipeline
from pipelines.declaration import Declaration
from pipelines.provider import ProviderAccess
from processors.frames import spoken_ending
from processors.greeting_player import SpokenSentence
from processors.playback_state import Playback
from processors.twilio_serializer import TwilioSerializer
from server.provider_failure import end_call_if_unusable
from server.stream_start import StreamStart
from server.twilio_rest import TwilioCalls


@dataclass
class Call:
    """A live call as the server tracks it."""

    start: StreamStart
    pipeline: str
    worker: PipelineWorker | None = field(default=None, repr=False)
    context: LLMContext | None = field(default=None, repr=False)
    playback: Playback | None = field(default=None, repr=False)
    caller_hung_up: bool = False
    ending: str = ""  # why the server is ending the call, once it is

    async def say_and_end(self, text: str, reason: str) -> bool:
        """Say `text`, then hang up once it has played; False if the call is already ending.

        Already ending: by the server, or by the pipeline itself (a farewell, a silent caller's
        goodbye, the time limit: their EndCallFrame has reached the playback tracker).
        """
        if self.ending or self.worker is None or (self.playback and self.playback.ending):
            return False
        self.ending = reason
        logger.info(f"ending the call: {reason}")
        await self.worker.queue_frames(spoken_ending(text, reason))
        return True


async def run_call(
    websocket: WebSocket,
    call: Call,
    *,
    declaration: Declaration,
    access: ProviderAccess,
    twilio: TwilioCalls,
    greeting: list[SpokenSentence] | None = None,
) -> None:
    """Run the call's pipeline until either side hangs up; hang up through REST if we ended it."""
    serializer = TwilioSerializer(call.start.stream_sid)
    transport = FastAPIWebsocketTransport(websocket, _transport_params(serializer))
    built = build_pipeline(declaration, transport, access, greeting)
    worker = PipelineWorker(
        built.pipeline,
        params=PipelineParams(
            audio_in_sample_rate=SAMPLE_RATE,
            audio_out_sample_rate=SAMPLE_RATE,
            enable_metrics=True,
        ),
        enable_rtvi=False,
        enable_turn_tracking=False,
    )
    call.worker = worker
    call.context = built.context
    call.playback = built.playback

    @worker.event_handler("on_pipeline_error")
    async def provider_failed(_worker, frame):
        await end_call_if_unusable(call, frame, declaration)

    @transport.event_handler("on_client_connected")
    async def greet(_transport, _websocket):
        if not greeting:  # not pre-synthesized: speak it through the TTS
            await worker.queue_frame(TTSSpeakFrame(declaration.bot.greeting))

    @transport.event_handler("on_client_disconnected")
    async def caller_left(_transport, _websocket):
        call.caller_hung_up = True
        await worker.cancel(reason="the caller hung up")

    async def end_call(params: FunctionCallParams):
        call.ending = "the bot said its farewell"
        logger.info("the bot is ending the call")
        await params.result_callback(
            {"ended": True}, properties=FunctionCallResultProperties(run_llm=False)
        )
        for frame in spoken_ending(declaration.bot.farewell, "the bot said its farewell"):
            await params.llm.push_frame(frame)

    built.llm.register_function(END_CALL.name, end_call, cancel_on_interruption=False)
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()
    if not (call.caller_hung_up or serializer.stopped):
        await twilio.hang_up(call.start.call_sid)


def _transport_params(serializer: TwilioSerializer) -> FastAPIWebsocketParams:
    return FastAPIWebsocketParams(
        audio_in_enabled=True,
        audio_in_sample_rate=SAMPLE_RATE,
        audio_out_enabled=True,
        audio_out_sample_rate=SAMPLE_RATE,
        # No trailing silence: the hang-up waits for Twilio's mark echoes instead.
        audio_out_end_silence_secs=0,
        add_wav_header=False,
        serializer=serializer,
        allowed_origins=[],
    )
