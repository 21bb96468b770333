"""A Twilio Media Stream seen from the server's side of its WebSocket, for transport tests.

It has the shape of Starlette's `WebSocket` the transport uses, and behind it the same model
of Twilio's playout buffer the simulated caller uses: media plays at real time, 20 ms a tick,
marks are echoed when reached, `clear` drops what is queued and echoes its marks.
"""

import asyncio
import base64
import json
import time

from starlette.websockets import WebSocketState

from standins.audio import ulaw_to_pcm
from standins.playout import PlayoutBuffer

TICK_SECS = 0.02


class PhoneSocket:
    """Twilio, for a transport under test: plays what it is sent, echoes marks, records."""

    def __init__(self) -> None:
        self.client_state = WebSocketState.CONNECTED
        self.playout = PlayoutBuffer()
        self.sent: list[dict] = []  # every message the transport sent, in order
        self._inbox: asyncio.Queue[dict] = asyncio.Queue()
        self._t0 = time.monotonic()
        self._ticker: asyncio.Task | None = None

    @property
    def played_ms(self) -> float:
        """How much bot audio the caller has heard."""
        return sum(len(stretch.ulaw) for stretch in self.playout.stretches) / 8

    @property
    def heard_pcm(self) -> bytes:
        """The bot audio the caller heard, in order."""
        return ulaw_to_pcm(b"".join(bytes(s.ulaw) for s in self.playout.stretches))

    def events(self, kind: str) -> list[dict]:
        """The messages of one kind the transport sent."""
        return [message for message in self.sent if message["event"] == kind]

    def says(self, message: dict) -> None:
        """Twilio sends `message` to the transport."""
        self._inbox.put_nowait({"type": "websocket.receive", "text": json.dumps(message)})

    def presses(self, key: str) -> None:
        """The caller presses `key`: Twilio sends its `dtmf` event."""
        self.says({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": key}})

    def hangs_up(self, *, closing: bool = True) -> None:
        """The caller hangs up: Twilio sends `stop` and closes the socket.

        `closing=False`: the close never reaches the server (a busy loop, a lost frame).
        """
        self.says({"event": "stop", "stop": {}})
        if closing:
            self._inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})

    # -- the WebSocket the transport sees ----------------------------------------------------

    async def receive(self) -> dict:
        return await self._inbox.get()

    async def send_text(self, text: str) -> None:
        message = json.loads(text)
        self.sent.append(message)
        if message["event"] == "media":
            self.playout.add_audio(base64.b64decode(message["media"]["payload"]))
            if not self._ticker:
                self._ticker = asyncio.create_task(self._play())
        elif message["event"] == "mark":
            self._echo(self.playout.add_mark(message["mark"]["name"]))
        elif message["event"] == "clear":
            self._echo(self.playout.clear())

    async def close(self) -> None:
        self.client_state = WebSocketState.DISCONNECTED
        self._inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        if self._ticker:
            self._ticker.cancel()

    async def _play(self) -> None:
        start, tick = time.monotonic(), 0
        while True:  # on the clock, as a phone plays: a late tick does not slow the next
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * TICK_SECS - time.monotonic()))
            _played, marks = self.playout.tick(time.monotonic() - self._t0)
            self._echo(marks)

    def _echo(self, marks: list[str]) -> None:
        for name in marks:
            self.says({"event": "mark", "mark": {"name": name}})
