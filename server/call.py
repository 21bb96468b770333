"""One phone call: its pipeline, its greeting, its ending, its hang-up."""

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from fastapi import WebSocket
from loguru import logger
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    FunctionCallResultProperties,
    TTSSpeakFrame,
)
from pipecat.observers.base_observer import BaseObserver
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.llm_service import FunctionCallParams
from pipecat.workers.runner import WorkerRunner

from pipelines.build import END_CALL, SAMPLE_RATE, build_pipeline
from pipelines.declaration import Declaration
from pipelines.provider import ProviderAccess
from pipelines.transfer import TRANSFER_CALL, TransferTarget
from pipelines.variables import with_variables
from processors.greeting_player import SpokenSentence
from processors.keypad import KeyActionParams
from server.answer_screening import screen_answer
from server.answered_by import Verdicts
from server.http_tool_handler import HttpToolHandler
from server.provider_failure import end_call_if_unusable
from server.recording import record
from server.stream_start import StreamStart
from server.transfer import RETURNED_PARAMETER, CallTransfers
from server.twilio_rest import Recording, TwilioCalls
from telephony.lifecycle import CallLifecycle, spoken_ending
from telephony.transport import TwilioTransport

FAREWELL_REASON = "the bot said its farewell"


@dataclass
class Call:
    """A live call as the server tracks it."""

    start: StreamStart
    pipeline: str
    outbound: bool = False  # placed by `POST /calls`
    variables: dict[str, str] = field(default_factory=dict)  # filled into what the bot says
    recording: Recording | None = None  # Twilio's, with `[call] record`
    lifecycle: CallLifecycle = field(default_factory=CallLifecycle)
    worker: PipelineWorker | None = field(default=None, repr=False)
    context: LLMContext | None = field(default=None, repr=False)
    transfers: CallTransfers | None = field(default=None, repr=False)
    transferred_to: str | None = None  # the transfer target Twilio was given the call for
    browser: bool = False  # from the console's page: no Twilio call behind it

    async def say_and_end(self, text: str, reason: str) -> bool:
        """Say `text`, then hang up once it has been heard; False if the call is already ending.

        Already ending: by the server, or by the pipeline itself (a farewell, a silent caller's
        goodbye, the time limit): whatever ends a call claims its lifecycle first.
        """
        if self.worker is None or not self.lifecycle.end(reason):
            return False
        # A speculative reply held for the caller's turn is withdrawn first: the caller is
        # muted from now on, and `ReplyHold` would keep `text` waiting behind it.
        await self.worker.queue_frames([EagerEndOfTurnCancelFrame(), *spoken_ending(text, reason)])
        return True

    async def transfer(self, target: str) -> bool:
        """Hand the call to the transfer target `target`, after its hand-off line.

        False if the pipeline declares no such target or the call is already ending. The
        keypad's shortcuts call it; the LLM's `transfer_call` does the same.
        """
        return bool(self.transfers) and await self.transfers.start(target)


async def run_call(
    websocket: WebSocket,
    call: Call,
    *,
    declaration: Declaration,
    access: ProviderAccess,
    twilio: TwilioCalls,
    public_url: str,
    greeting: list[SpokenSentence] | None = None,
    answers: Verdicts | None = None,
    recording_callback: str = "",
    observers: list[BaseObserver] | None = None,
) -> None:
    """Run the call's pipeline until either side hangs up; hang up through REST if we ended it.

    `observers` watch the call's frames (its record).

    A call handed to a person (a transfer) is Twilio's from then on: no hang-up. A call back
    from a transfer nobody answered opens with that target's `unanswered` line. An outbound
    call first waits for `answers` to say who answered. With `[call] record`, Twilio records
    the call and posts `recording_callback` when the recording is ready.
    """
    declaration = with_variables(declaration, call.variables)
    transport = TwilioTransport(websocket, call.start.stream_sid)
    returned = _returned_from(call, declaration)
    # A call we placed is screened (its greeting waits for the verdict), unless it is back
    # from a transfer: then it was answered long ago.
    call.lifecycle.screening = call.outbound and answers is not None and not returned
    greeting = None if returned or call.lifecycle.screening else greeting
    hand_off = _hand_off(call) if declaration.transfers else None
    built = build_pipeline(declaration, transport, access, call.lifecycle, greeting, hand_off)
    worker = PipelineWorker(
        built.pipeline,
        params=PipelineParams(
            audio_in_sample_rate=SAMPLE_RATE,
            audio_out_sample_rate=SAMPLE_RATE,
            enable_metrics=True,
            enable_usage_metrics=True,  # tokens and characters, for the call's record
        ),
        observers=observers or [],
        enable_rtvi=False,
        enable_turn_tracking=False,
        # The declaration's [call] limits end a silent or endless call; pipecat's idle
        # timeout would only add an observer that every frame's every hop is queued to.
        idle_timeout_secs=None,
    )
    call.worker = worker
    call.context = built.context

    @worker.event_handler("on_pipeline_error")
    async def provider_failed(_worker, frame):
        await end_call_if_unusable(call, frame, declaration)

    async def end_call(params: FunctionCallParams):
        claimed = call.lifecycle.end(FAREWELL_REASON)
        await params.result_callback(
            {"ended": True}, properties=FunctionCallResultProperties(run_llm=False)
        )
        if not claimed:
            return  # already ending: its own last words are on their way
        for frame in spoken_ending(declaration.bot.farewell, FAREWELL_REASON):
            await params.llm.push_frame(frame)

    built.register_tool(END_CALL.name, end_call, cancel_on_interruption=False)
    for tool in declaration.tools:  # a barge-in does not cancel a request (nor lose its result)
        built.register_tool(tool.name, HttpToolHandler(tool, access), cancel_on_interruption=False)
    if declaration.transfers:
        call.transfers = CallTransfers(
            call,
            declaration,
            twilio=twilio,
            public_url=public_url,
            llm=built.llm,
            context=built.context,
        )
        built.register_tool(TRANSFER_CALL, call.transfers.tool, cancel_on_interruption=False)
        if built.keypad:

            async def transfer_by_key(_pressed: KeyActionParams) -> None:
                await call.transfer(declaration.transfers[0].name)  # the first target

            built.register_key_action("transfer", transfer_by_key)
    if returned:
        await worker.queue_frame(TTSSpeakFrame(returned.unanswered))
    elif not greeting and not call.lifecycle.screening:  # not pre-synthesized: spoken now
        await worker.queue_frame(TTSSpeakFrame(declaration.bot.greeting))
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    beside = []  # what runs beside the pipeline, and stops with it
    if call.lifecycle.screening and answers:
        beside.append(screen_answer(call, declaration, answers))
    if declaration.call.record:
        beside.append(record(call, twilio, recording_callback))
    try:
        await _run_beside(runner, beside)
    finally:
        if call.transfers:
            await call.transfers.close()
    if call.transferred_to:
        logger.info(f"the call is Twilio's now, transferred to {call.transferred_to}: no hang-up")
    elif transport.caller_hung_up:
        call.lifecycle.caller_left()
    elif call.browser:  # the transport closed the stream: that hangs up the page
        logger.info("a browser call: no Twilio call to end")
    else:
        await twilio.hang_up(call.start.call_sid)


def _hand_off(call: Call):
    async def hand_off(target: str) -> None:
        assert call.transfers is not None, "registered with the transfer tool"
        await call.transfers.hand_off(target)

    return hand_off


def _returned_from(call: Call, declaration: Declaration) -> TransferTarget | None:
    """The transfer target this call comes back from unanswered, if it does."""
    name = call.start.parameters.get(RETURNED_PARAMETER)
    target = next((t for t in declaration.transfers if t.name == name), None)
    if name:
        logger.info(f"back from a transfer to {name} nobody answered")
    return target


async def _run_beside(runner: WorkerRunner, beside: list[Coroutine[Any, Any, None]]) -> None:
    """Run the call's pipeline, and `beside` it until it ends."""
    async with asyncio.TaskGroup() as tasks:
        running = [tasks.create_task(work) for work in beside]
        await runner.run()
        for task in running:
            task.cancel()
