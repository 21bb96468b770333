"""Helpers for end-to-end tests: dialing, and what the stand-ins saw."""

from standins.caller import Answer, SimulatedCall, answered
from standins.stack import ACCOUNT_SID, AUTH_TOKEN


async def dial(url: str, **kwargs) -> SimulatedCall:
    """A simulated Twilio call to the bot at `url`, signed with the stand-in account's token."""
    return await SimulatedCall.dial(url, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, **kwargs)


def user_texts(request_body: dict) -> list[str]:
    """The user messages of one chat-completions request."""
    return [m["content"] for m in request_body["messages"] if m["role"] == "user"]


def final_transcripts(standins) -> list[str]:
    """Every non-empty final transcript the STT stand-in sent, over all its connections."""
    return [
        message["channel"]["alternatives"][0]["transcript"]
        for connection in standins.stt.connections
        for message in connection.sent
        if message.get("type") == "Results"
        and message.get("is_final")
        and message["channel"]["alternatives"][0]["transcript"]
    ]


async def answer(url: str, **kwargs) -> Answer:
    """The bot at `url` answers a signed incoming-call webhook: its stream URL, signed."""
    return await answered(url, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, **kwargs)
