"""Recording a call through Twilio: both channels, as the phone network carried them."""

from typing import TYPE_CHECKING

from loguru import logger

from server.twilio_rest import TransientError, TwilioCalls, TwilioRefused

if TYPE_CHECKING:
    from server.call import Call


async def record(call: "Call", twilio: TwilioCalls, callback: str) -> None:
    """Ask Twilio to record the live call; keep its SID and URL on `call` (and log them).

    Twilio records what it carries, so the recording holds what the caller really heard.
    A refusal is logged and the call goes on unrecorded.
    """
    try:
        call.recording = await twilio.start_recording(call.start.call_sid, callback=callback)
    except (TwilioRefused, TransientError) as e:
        logger.error(f"the call is not being recorded: {e}")
        return
    logger.info(f"recording {call.recording.sid}: {call.recording.url}")
