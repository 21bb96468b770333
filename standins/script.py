"""The scripted call every test, fault and benchmark places: who dials, what is said, answered.

The simulated caller dials with the stand-in Twilio account; it speaks the recordings in
`recordings/`, which the stand-in recognizers know; the stand-in LLMs answer as the
receptionist of `standins/openai_replies.py`.
"""

import asyncio
import json
from collections.abc import Callable

from recordings import recording
from standins.caller import Answer, SimulatedCall, answered
from standins.openai_replies import LONG_REPLY, Reply, ToolCall, last_user_text, scripted_reply
from standins.stack import ACCOUNT_SID, AUTH_TOKEN

GREETING = "Thanks for calling Luigi's. How can I help you today?"
BOOK_TABLE = "Hi, I'd like to book a table for two tomorrow at seven."
BOOKING_REPLY = "Of course. A table for two tomorrow at seven. May I have a name for the booking?"


async def dial(url: str, **kwargs) -> SimulatedCall:
    """A simulated Twilio call to the bot at `url` (its PUBLIC_URL), signed by the account."""
    return await SimulatedCall.dial(url, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, **kwargs)


async def answer(url: str, **kwargs) -> Answer:
    """The bot at `url` answers a signed incoming-call webhook: its stream URL, signed."""
    return await answered(url, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, **kwargs)


async def dial_into_long_reply(url: str, *, heard_secs: float = 1.0) -> SimulatedCall:
    """A call to the bot at `url`: the greeting, a booking asked, `heard_secs` of the reply.

    For cutting in on a long reply: the stand-in LLM answers the booking at length
    (`long_reply_to_bookings`), slowly enough to be still streaming.
    """
    call = await dial(url)
    await call.listen()
    await call.say(recording("book_table.wav"))
    await call.wait_for_bot_audio(timeout=10)
    await asyncio.sleep(heard_secs)
    return call


def long_reply_to_bookings(
    messages: list[dict],
    tools: list[dict] | None,
    *,
    otherwise: Callable[[list[dict], list[dict] | None], Reply] = scripted_reply,
) -> Reply:
    """The receptionist (`otherwise`), but a booking gets LONG_REPLY: worth interrupting."""
    if "book a table" in last_user_text(messages).lower():
        return Reply(text=LONG_REPLY)
    return otherwise(messages, tools)


CHECK_AVAILABILITY = "check_availability"
BOOKING_ARGUMENTS = {"date": "tomorrow", "party_size": 2, "time": "19:00"}
TOOL_FAILED_REPLY = "Sorry, I can't reach our booking system right now. Please try again later."


def checking_availability(
    messages: list[dict],
    tools: list[dict] | None,
    *,
    otherwise: Callable[[list[dict], list[dict] | None], Reply] = scripted_reply,
) -> Reply:
    """The receptionist (`otherwise`), but a booking calls `check_availability` first.

    A tool result not answered yet is answered first: its `message`, or TOOL_FAILED_REPLY
    for an `error`.
    """
    result = unanswered_tool_result(messages)
    if result is not None:
        return Reply(text=TOOL_FAILED_REPLY if "error" in result else result["message"])
    offered = {tool.get("function", {}).get("name") for tool in tools or []}
    if "book a table" in last_user_text(messages).lower() and CHECK_AVAILABILITY in offered:
        return Reply(tool_calls=[ToolCall(CHECK_AVAILABILITY, dict(BOOKING_ARGUMENTS))])
    return otherwise(messages, tools)


def unanswered_tool_result(messages: list[dict]) -> dict | None:
    """The last tool result, if only the bot's words came after it.

    As pipecat sends one: in the tool message, or, once the conversation moved on while
    the tool ran, in a developer message (`{"type": "async_tool", "result": …}`).
    """
    for message in reversed(messages):
        role, content = message.get("role"), message.get("content")
        if role == "assistant" and not message.get("tool_calls"):
            continue
        payload = _json(content) if role in ("tool", "developer") else None
        if not isinstance(payload, dict):
            return None
        if payload.get("type") != "async_tool":
            return payload if role == "tool" else None
        finished = payload.get("status") == "finished"
        return _json(payload.get("result")) if finished else None
    return None


def _json(text) -> dict | list | None:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
