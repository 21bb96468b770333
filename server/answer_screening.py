"""An outbound call's first moments: wait for who answered, then greet or leave a voicemail."""

from typing import TYPE_CHECKING

from loguru import logger
from pipecat.frames.frames import EndWorkerFrame, TTSSpeakFrame

from pipelines.declaration import Declaration
from server.answered_by import Verdicts, answerer

if TYPE_CHECKING:
    from server.call import Call

# Twilio posts its verdict within the declared detection timeout; past this much more, the
# verdict is taken as lost (the "AMD callback never coming" fault) and the callee as a person.
VERDICT_GRACE_SECS = 5.0
VOICEMAIL_REASON = "the bot left a voicemail"
NO_MESSAGE_REASON = "answered by {answerer}, with no message to leave"


async def screen_answer(call: "Call", declaration: Declaration, answers: Verdicts) -> None:
    """Hold the callee muted until Twilio's verdict; then act on it.

    A person (or `unknown`, or no verdict in time): the callee is heard from now on and the
    bot says its `outbound_greeting`. A machine (its greeting over, the beep played): the bot
    says its `voicemail` line and hangs up once it has played. A fax, or a machine with no
    `voicemail` line declared: hang up at once.
    """
    assert call.worker, "the call's pipeline is built"
    timeout = declaration.outbound.machine_detection_timeout_secs + VERDICT_GRACE_SECS
    verdict = await answers.wait(call.start.call_sid, timeout)
    if verdict is None:
        logger.warning(f"no answering-machine verdict within {timeout:.0f} s: greeting a person")
    kind = answerer(verdict)
    bot = declaration.bot
    if kind == "person":
        call.lifecycle.screening = False
        await call.worker.queue_frame(TTSSpeakFrame(bot.outbound_greeting or bot.greeting))
    elif kind == "machine" and bot.voicemail:
        logger.info(f"answered by a machine ({verdict}): leaving the voicemail")
        await call.say_and_end(bot.voicemail, VOICEMAIL_REASON)
    elif call.lifecycle.end(NO_MESSAGE_REASON.format(answerer=verdict)):
        await call.worker.queue_frame(EndWorkerFrame(reason=call.lifecycle.reason))
