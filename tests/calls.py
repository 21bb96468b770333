"""Helpers for end-to-end tests: what the stand-ins saw, the caller's lines, a call's record.

Dialing is `standins.script`.
"""

import asyncio

import httpx

from recordings import recording
from standins.audio import pcm_to_ulaw, read_wav, voice_span
from standins.caller import SimulatedCall
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


async def spoken(call: SimulatedCall, name: str) -> float:
    """Say the recording `name`; when the caller's voice ended (the caller's clock)."""
    pcm = read_wav(recording(name))
    return await call.say(pcm) + voice_span(pcm)[1]


async def recorded_call(url: str, call_sid: str, *, token: str, ended: bool = True) -> dict:
    """The call's record from the API, once it has ended (the writer is not waited on)."""
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=auth) as client:
        for _ in range(100):
            response = await client.get(f"/calls/{call_sid}")
            if response.status_code == 200 and (response.json()["ended_at"] or not ended):
                return response.json()
            await asyncio.sleep(0.05)
    raise AssertionError(f"no finished record of {call_sid}: {response.status_code}")
