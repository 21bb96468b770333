"""Helpers for end-to-end tests: what the stand-ins saw, the caller's lines, a call's record.

Dialing is `standins.script`.
"""

from harness.call_record import recorded_call, spoken  # noqa: F401 (the tests' helpers too)
from standins.audio import pcm_to_ulaw
from standins.speech import synthesize


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


def heard_matches(heard_ulaw: bytes, text: str) -> bool:
    """The caller heard exactly the stand-in voice saying `text` (to within one 40 ms chunk)."""
    expected = pcm_to_ulaw(synthesize(text).pcm)
    return abs(len(heard_ulaw) - len(expected)) <= 320 and expected.startswith(heard_ulaw[:-320])
