"""pipecat's ElevenLabs TTS, reading only the messages of the contexts it still plays."""

import json
from collections.abc import AsyncIterator, Callable

from pipecat.services.elevenlabs.tts import ElevenLabsTTSService


class LiveContextsElevenLabsTTSService(ElevenLabsTTSService):
    """ElevenLabs' multi-context WebSocket, deaf to the contexts a cut or withdrawal let go.

    A context closed after a flush (a barge-in's, a withdrawn speculative reply's) is still
    spoken to its end by ElevenLabs, and a message in flight arrives after any close. pipecat
    1.14 drops such a context's audio but reads its alignment into the one word clock and
    partial word it keeps for the context playing: that reply's words come out garbled
    ("Thaallingnk"), are dropped untimed, and a barge-in finds nothing heard. Here those
    messages never reach pipecat's reader; a context's end (`isFinal`) still does.
    """

    def _get_websocket(self):
        return _LiveContextsOnly(super()._get_websocket(), self.audio_context_available)


class _LiveContextsOnly:
    """A WebSocket whose incoming messages are those of live contexts (and of none)."""

    def __init__(self, socket, live: Callable[[str], bool]) -> None:
        self._socket = socket
        self._live = live

    def __getattr__(self, name: str):
        return getattr(self._socket, name)

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        async for message in self._socket:
            if self._wanted(message):
                yield message

    def _wanted(self, message: str | bytes) -> bool:
        try:
            parsed = json.loads(message)
        except ValueError:
            return True  # pipecat's reader reports it
        if not isinstance(parsed, dict) or parsed.get("isFinal") is True:
            return True
        context_id = parsed.get("contextId")
        return context_id is None or self._live(context_id)
