"""The scripted call every test, fault and benchmark places: who dials, what is said, answered.

The simulated caller dials with the stand-in Twilio account; it speaks the recordings in
`recordings/`, which the stand-in recognizers know; the stand-in LLMs answer as the
receptionist of `standins/openai_replies.py`.
"""

import asyncio
from collections.abc import Callable

from recordings import recording
from standins.caller import Answer, SimulatedCall, answered
from standins.openai_replies import LONG_REPLY, Reply, last_user_text, scripted_reply
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
