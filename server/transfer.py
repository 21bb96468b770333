"""Transfer a call to a person: the `transfer_call` tool, the keypad's hook, and the hand-over."""

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from loguru import logger
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    EndWorkerFrame,
    Frame,
    FunctionCallResultProperties,
    TTSSpeakFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.llm_service import FunctionCallParams, LLMService

from pipelines.declaration import Declaration
from pipelines.transfer import TransferTarget
from server import transfer_twiml
from server.twilio_rest import TwilioCalls
from server.twilio_urls import VOICE_PATH
from telephony.frames import HandOffFrame

if TYPE_CHECKING:
    from server.call import Call

DIALED_PATH = "/transfer/dialed"  # a cold transfer's <Dial action>: how the dial went
STATUS_PATH = "/transfer/status"  # a warm transfer's person's call: its final status
RETURNED_PARAMETER = "unanswered_transfer"  # stream parameter: back from this target
SUMMARY_SECS = 5.0  # the person's summary: the LLM's, if it comes by then
# After the redirect Twilio stops the stream itself; closing it first could end the call
# (its TwiML would go on past <Connect>) if Twilio had not switched it yet.
TWILIO_STOP_SECS = 10.0
SUMMARY_REQUEST = (
    "Summarize this call in one or two sentences for the colleague who takes it over now: "
    "who is calling and what they want. Plain speech, no greeting."
)


def transfer_reason(target: TransferTarget) -> str:
    """Why the bot's part of the call ends."""
    return f"transferring the caller to {target.name} ({target.mode})"


def hand_off_frames(target: TransferTarget) -> list[Frame]:
    """Say the hand-off line (no barge-in cuts it), then hand over once it has been heard."""
    speak = TTSSpeakFrame(target.handoff)
    speak.interruptible = False
    return [speak, HandOffFrame(target.name)]


def back_to_bot_url(public_url: str, pipeline: str, target: str, leg: str) -> str:
    """The webhook that puts a call whose transfer nobody answered back on the bot."""
    query = urlencode({"pipeline": pipeline, "transfer": target, "leg": leg})
    return f"{public_url.rstrip('/')}{VOICE_PATH}?{query}"


def _callback_url(public_url: str, path: str, **query: str) -> str:
    return f"{public_url.rstrip('/')}{path}?{urlencode(query)}"


class CallTransfers:
    """One call's transfers to the people its pipeline declares (`[[transfer]]`).

    A transfer starts from the LLM's `transfer_call` (`tool`) or from elsewhere in the call
    (`start`, e.g. a keypad shortcut): it claims the call's ending, and the bot says the
    target's hand-off line. Once the caller has heard it, `hand_off` gives the call to
    Twilio (cold: `<Dial>`; warm: the person is dialled with a summary to hear, and the
    caller waits in a conference); Twilio stops the stream, which ends the pipeline, and
    nobody hangs up. If Twilio refuses,
    the caller hears the target's `unanswered` line and the call goes on with the bot.
    """

    def __init__(
        self,
        call: "Call",
        declaration: Declaration,
        *,
        twilio: TwilioCalls,
        public_url: str,
        llm: LLMService,
        context: LLMContext,
    ) -> None:
        """Transfers of `call`, whose pipeline is `declaration`."""
        self._call, self._declaration = call, declaration
        self._targets = {target.name: target for target in declaration.transfers}
        self._twilio, self._public_url = twilio, public_url
        self._llm, self._context = llm, context
        self._summary: asyncio.Task[str] | None = None

    def target(self, name: str) -> TransferTarget | None:
        """The declared target `name`, if there is one."""
        return self._targets.get(name)

    async def tool(self, params: FunctionCallParams) -> None:
        """The `transfer_call` function: the LLM names the target."""
        name = str(params.arguments.get("target", ""))
        target = self._targets.get(name)
        if target is None:
            choices = ", ".join(self._targets)
            await params.result_callback({"error": f"no target {name!r}; choose one of {choices}"})
            return
        claimed = self._claim(target)
        await params.result_callback(
            {"transferring_to": name}, properties=FunctionCallResultProperties(run_llm=False)
        )
        if claimed:
            for frame in hand_off_frames(target):
                await params.llm.push_frame(frame)

    async def start(self, name: str) -> bool:
        """Transfer the call to target `name` now (not asked of the LLM); False if it cannot.

        It cannot when `name` is not declared, or the call is already ending.
        """
        target = self._targets.get(name)
        if target is None or self._call.worker is None or not self._claim(target):
            return False
        # A speculative reply held for the caller's turn is withdrawn first (see `say_and_end`).
        await self._call.worker.queue_frames(
            [EagerEndOfTurnCancelFrame(), *hand_off_frames(target)]
        )
        return True

    async def hand_off(self, name: str) -> None:
        """The caller heard the hand-off line: give the call to Twilio, end the pipeline."""
        target = self._targets[name]
        # Set first: Twilio may stop the stream (and this pipeline) before its answer is read.
        self._call.transferred_to = name
        if self._call.browser:  # no Twilio call to hand over, and no one should be dialled
            logger.info(f"a browser call: not transferred to {name} ({target.to})")
            handed = False
        else:
            handed = await (self._cold(target) if target.mode == "cold" else self._warm(target))
        worker = self._call.worker
        assert worker is not None, "a running call"
        if handed:
            await asyncio.sleep(TWILIO_STOP_SECS)  # cancelled with the pipeline by the stop
            logger.warning(f"Twilio did not stop the stream {TWILIO_STOP_SECS:.0f} s after it")
            await worker.queue_frame(EndWorkerFrame(reason=transfer_reason(target)))
            return
        logger.warning(f"the transfer to {name} failed: the call goes on with the bot")
        self._call.transferred_to = None
        self._call.lifecycle.resume(transfer_reason(target))
        await worker.queue_frame(TTSSpeakFrame(target.unanswered))

    async def close(self) -> None:
        """The call ended: stop a summary still being written."""
        if self._summary and not self._summary.done():
            self._summary.cancel()
            await asyncio.gather(self._summary, return_exceptions=True)

    def _claim(self, target: TransferTarget) -> bool:
        if not self._call.lifecycle.end(transfer_reason(target)):
            return False
        if target.mode == "warm":  # written while the hand-off line plays
            self._summary = asyncio.create_task(self._summarize(), name="transfer-summary")
        return True

    def _caller_id(self, target: TransferTarget) -> str:
        return target.caller_id or self._call.start.parameters.get("called", "")

    async def _cold(self, target: TransferTarget) -> bool:
        action = _callback_url(
            self._public_url, DIALED_PATH, pipeline=self._call.pipeline, target=target.name
        )
        twiml = transfer_twiml.cold(target, self._caller_id(target), action)
        return await self._twilio.redirect(self._call.start.call_sid, twiml)

    async def _warm(self, target: TransferTarget) -> bool:
        call_sid = self._call.start.call_sid
        room = f"transfer-{call_sid}"
        summary = await self._summary if self._summary else self._fallback_summary()
        status = _callback_url(
            self._public_url,
            STATUS_PATH,
            call=call_sid,
            pipeline=self._call.pipeline,
            target=target.name,
        )
        whisper = transfer_twiml.whisper(summary, room, self._declaration.bot.language)
        # The person is dialled first: once the caller is redirected, Twilio stops this
        # stream and the pipeline (this task with it) ends.
        person = await self._twilio.dial(
            target.to,
            self._caller_id(target),
            whisper,
            ring_secs=target.ring_secs,
            status_callback=status,
        )
        if person is None:
            return False
        if await self._twilio.redirect(call_sid, transfer_twiml.hold(room, target.hold_music)):
            logger.info(f"the caller waits in conference {room} while {target.name} is dialled")
            return True
        await self._twilio.hang_up(person)
        return False

    async def _summarize(self) -> str:
        """The LLM's summary of the call so far for the person, or the caller's own words."""
        said = [m for m in self._context.get_messages() if _is_text(m)]
        context = LLMContext(messages=[*said, {"role": "user", "content": SUMMARY_REQUEST}])
        try:
            async with asyncio.timeout(SUMMARY_SECS):
                summary = await self._llm.run_inference(context)
        except Exception as e:  # any provider failure: the caller's own words will do
            logger.warning(f"no summary from the LLM ({e!r}): the caller's words instead")
            summary = None
        return (summary or "").strip() or self._fallback_summary()

    def _fallback_summary(self) -> str:
        said = [m["content"] for m in self._context.get_messages() if m.get("role") == "user"]
        words = " ".join(str(s) for s in said if isinstance(s, str))
        return f"A caller transferred by the phone bot. They said: {words or 'nothing yet'}"


def _is_text(message) -> bool:
    """A caller's or the bot's words (not a tool call or its result)."""
    return message.get("role") in ("user", "assistant") and isinstance(message.get("content"), str)
