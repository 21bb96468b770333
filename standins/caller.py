"""A simulated Twilio caller: dials the bot like Twilio does and listens like a phone.

It posts the signed incoming-call webhook, follows the TwiML `<Connect><Stream>`, opens the
signed Media Streams WebSocket, sends the caller's audio as 20 ms μ-law `media` at real-time
pace (silence when not speaking, as Twilio does), plays the bot's audio through a model of
Twilio's playout buffer (marks echoed when reached, `clear` empties it) and records a
timeline of everything sent, received and heard.
"""

import asyncio
import base64
import json
import secrets
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from yarl import URL

from standins.audio import FRAME_MS, ULAW_SILENCE, frames_of, pcm_to_ulaw, read_wav, ulaw_to_pcm
from standins.playout import PlayoutBuffer, Stretch

_SILENT_FRAME = bytes([ULAW_SILENCE]) * 160


class DialError(Exception):
    """The bot did not answer the way Twilio expects."""


@dataclass
class Event:
    """One thing that happened on the call, at `t` seconds since the stream started."""

    t: float
    kind: str  # sent_speech, sent_speech_end, key, media, mark, clear, echo, heard, closed, stream
    detail: str = ""


@dataclass
class BotTurn:
    """What the caller heard of one bot turn."""

    start: float
    end: float
    ulaw: bytes = field(repr=False)

    @property
    def pcm(self) -> bytes:
        """The heard audio as 16-bit PCM."""
        return ulaw_to_pcm(self.ulaw)

    @property
    def duration(self) -> float:
        """Seconds of audio heard."""
        return len(self.ulaw) / 8000


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


class SimulatedCall:
    """One phone call to the bot. Create with `await SimulatedCall.dial(...)`."""

    def __init__(self, ws: ClientConnection, *, account_sid: str, call_sid: str, params: dict):
        self._ws = ws
        self.account_sid = account_sid
        self.call_sid = call_sid
        self.stream_sid = _sid("MZ")
        self.parameters = params
        self.stream_url = ""  # the URL the bot's TwiML gave
        self.timeline: list[Event] = []
        self.playout = PlayoutBuffer()
        self.closed = asyncio.Event()
        # How far behind its 20 ms schedule this caller's own clock ticked, at worst, after
        # the first second: audio a busy harness sent late, not audio the bot took late.
        self.max_clock_lag = 0.0
        self._mic: asyncio.Queue[bytes] = asyncio.Queue()
        self._sequence = 0
        self._chunk = 0
        self._t0 = 0.0
        self._stream_t0 = 0.0
        self._spoke_until = 0.0
        self._tasks: list[asyncio.Task] = []

    @classmethod
    async def dial(
        cls,
        base_url: str,
        *,
        account_sid: str,
        auth_token: str,
        parameters: dict[str, str] | None = None,
        **webhook,
    ) -> "SimulatedCall":
        """Call the bot at `base_url` (its PUBLIC_URL) and start streaming.

        `webhook`: how the incoming-call webhook is posted, as `answered` takes it (`caller`,
        `called`, `signature`, `webhook_query`: added to the /voice URL, as configured on a
        Twilio number); `parameters` override the TwiML's stream `<Parameter>`s (as a TwiML
        author would).
        """
        answer = await answered(base_url, account_sid=account_sid, auth_token=auth_token, **webhook)
        return await cls.join(answer, account_sid=account_sid, parameters=parameters)

    @classmethod
    async def join(
        cls, answer: "Answer", *, account_sid: str, parameters: dict[str, str] | None = None
    ) -> "SimulatedCall":
        """Open the signed media stream the bot's TwiML named and start streaming.

        For a call whose webhook was already answered: an incoming call's, or an outbound
        call's, which Twilio's stand-in posts when the callee picks up.
        """
        ws = await connect(
            answer.stream_url,
            additional_headers={"X-Twilio-Signature": answer.stream_signature},
            proxy=None,
            compression=None,
        )
        params = answer.parameters | (parameters or {})
        call = cls(ws, account_sid=account_sid, call_sid=answer.call_sid, params=params)
        call.stream_url = answer.stream_url
        await call._start()
        return call

    async def _start(self, *, restart: bool = False) -> None:
        await self._ws.send(
            json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        )
        start = {
            "accountSid": self.account_sid,
            "streamSid": self.stream_sid,
            "callSid": self.call_sid,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": self.parameters,
        }
        self._stream_t0 = time.monotonic()  # this stream's clock starts
        if not restart:  # one timeline for the whole call, over all its streams
            self._t0 = self._stream_t0
        await self._send_event("start", start=start)
        self._tasks = [
            asyncio.create_task(self._clock(), name="caller-clock"),
            asyncio.create_task(self._receive(), name="caller-receive"),
        ]

    def now(self) -> float:
        """Seconds since the stream started."""
        return time.monotonic() - self._t0

    def stream_time(self, monotonic: float) -> float:
        """A `time.monotonic()` reading as seconds since the stream started."""
        return monotonic - self._t0

    async def _send_event(self, event: str, **body) -> None:
        self._sequence += 1
        message = {
            "event": event,
            "sequenceNumber": str(self._sequence),
            "streamSid": self.stream_sid,
        }
        await self._ws.send(json.dumps(message | body))

    async def send_raw(self, data: str | bytes) -> None:
        """Send anything at all on the stream (for malformed-input tests)."""
        await self._ws.send(data)

    # -- the caller's side: speaking ----------------------------------------------------

    async def say(self, audio: bytes | str | Path) -> float:
        """Speak 16-bit 8 kHz PCM (or a WAV file) in real time.

        Returns when its first packet was sent; the timeline's `sent_speech` event says the same.
        """
        pcm = read_wav(audio) if isinstance(audio, (str, Path)) else audio
        frames = frames_of(pcm_to_ulaw(pcm))
        loop = asyncio.get_running_loop()
        self._speech_started, self._speech_done = loop.create_future(), loop.create_future()
        self._utterance_ms = len(frames) * FRAME_MS
        for frame in frames:
            self._mic.put_nowait(frame)
        self._mic.put_nowait(b"")  # end marker
        await self._speech_done
        return self._speech_started.result()

    async def press(self, keys: str, *, gap: float = 0.25) -> float:
        """Press `keys` ("4217#") one by one, `gap` seconds apart, as Twilio reports them.

        Twilio sends one `dtmf` event per key, between the `media` packets that go on as
        usual. Returns when the first key went; `listen()` then waits for what follows the last.
        """
        first = self.now()
        for i, key in enumerate(keys):
            if i:
                await asyncio.sleep(gap)
            self.timeline.append(Event(self.now(), "key", key))
            await self._send_event("dtmf", dtmf={"track": "inbound_track", "digit": key})
        self._spoke_until = self.now()
        return first

    async def _clock(self) -> None:
        """Every 20 ms: send one packet of the caller's audio and play 20 ms of the bot's."""
        tick, base = 0, self._stream_t0
        try:
            while not self.closed.is_set():
                tick += 1
                if tick > 1000 // FRAME_MS:
                    due = base + (tick - 1) * FRAME_MS / 1000
                    self.max_clock_lag = max(self.max_clock_lag, time.monotonic() - due)
                await self._send_media(self._next_mic_frame())
                played, marks = self.playout.tick(self.now())
                for name in marks:
                    await self._echo(name)
                await asyncio.sleep(max(0.0, base + tick * FRAME_MS / 1000 - time.monotonic()))
        except ConnectionClosed:
            self._close("server closed the stream")

    def _next_mic_frame(self) -> bytes:
        if self._mic.empty():
            return _SILENT_FRAME
        frame = self._mic.get_nowait()
        if frame:
            if not self._speech_started.done():
                self._speech_started.set_result(self.now())
                self.timeline.append(Event(self.now(), "sent_speech", f"{self._utterance_ms} ms"))
            return frame
        self._spoke_until = self.now()
        self.timeline.append(Event(self._spoke_until, "sent_speech_end"))
        if not self._speech_done.done():
            self._speech_done.set_result(None)
        return _SILENT_FRAME

    async def _send_media(self, frame: bytes) -> None:
        self._chunk += 1
        media = {
            "track": "inbound",
            "chunk": str(self._chunk),
            "timestamp": str(self._chunk * FRAME_MS),
            "payload": base64.b64encode(frame).decode("ascii"),
        }
        await self._send_event("media", media=media)

    async def _echo(self, name: str) -> None:
        self.timeline.append(Event(self.now(), "echo", name))
        await self._send_event("mark", mark={"name": name})

    # -- the bot's side: what reaches the phone ----------------------------------------

    async def _receive(self) -> None:
        try:
            async for data in self._ws:
                self._handle(json.loads(data))
        except ConnectionClosed:
            pass
        self._close("server closed the stream")

    def _handle(self, message: dict) -> None:
        event = message.get("event")
        if message.get("streamSid") != self.stream_sid:
            self.timeline.append(Event(self.now(), "foreign", json.dumps(message)[:200]))
            return
        if event == "media":
            audio = base64.b64decode(message["media"]["payload"])
            self.timeline.append(Event(self.now(), "media", str(len(audio))))
            self.playout.add_audio(audio)
        elif event == "mark":
            name = message["mark"]["name"]
            self.timeline.append(Event(self.now(), "mark", name))
            for echoed in self.playout.add_mark(name):
                asyncio.create_task(self._echo(echoed))  # noqa: RUF006 - fire and forget echo
        elif event == "clear":
            self.timeline.append(Event(self.now(), "clear"))
            for echoed in self.playout.clear():
                asyncio.create_task(self._echo(echoed))  # noqa: RUF006
        else:
            self.timeline.append(Event(self.now(), "unknown", json.dumps(message)[:200]))

    def _close(self, why: str) -> None:
        if not self.closed.is_set():
            self.timeline.append(Event(self.now(), "closed", why))
            self.closed.set()

    # -- what tests and the terminal demo ask ------------------------------------------

    @property
    def heard(self) -> list[Stretch]:
        """Every stretch of bot audio that played out, in order."""
        return self.playout.stretches

    def events(self, kind: str) -> list[Event]:
        """The timeline's events of one kind."""
        return [e for e in self.timeline if e.kind == kind]

    async def listen(
        self, *, timeout: float = 10.0, quiet: float = 0.8, after: float | None = None
    ) -> BotTurn:
        """What the bot says after the caller last spoke (or after `after`), once it falls quiet.

        Waits for bot audio that started playing after that moment, then for `quiet` seconds
        of silence.
        """
        after = self._spoke_until if after is None else after
        async with asyncio.timeout(timeout):
            while not self._heard_since(after):
                await asyncio.sleep(0.02)
            while not self.closed.is_set():
                if not self.playout.playing and self.now() - self.heard[-1].end >= quiet:
                    break
                await asyncio.sleep(0.02)
        stretches = self._heard_since(after)
        return BotTurn(
            start=stretches[0].start,
            end=stretches[-1].end,
            ulaw=b"".join(bytes(s.ulaw) for s in stretches),
        )

    def _heard_since(self, moment: float) -> list[Stretch]:
        return [s for s in self.heard if s.start >= moment]

    async def wait_for_bot_audio(self, *, timeout: float = 10.0) -> float:
        """Wait until bot audio is playing; returns when that stretch started."""
        async with asyncio.timeout(timeout):
            while not self.playout.playing:
                await asyncio.sleep(0.02)
        return self.heard[-1].start

    async def hang_up(self) -> None:
        """Hang up like Twilio: `stop`, then close the WebSocket."""
        await self._stop_stream("caller hung up")

    async def stream_stopped(self) -> None:
        """Twilio stops the stream as the call leaves `<Connect><Stream>` (a REST redirect).

        `stop`, then the socket closes; the call itself goes on, elsewhere.
        """
        await self._stop_stream("Twilio stopped the stream: the call was redirected")

    async def _stop_stream(self, why: str) -> None:
        if not self.closed.is_set():
            stop = {"accountSid": self.account_sid, "callSid": self.call_sid}
            try:
                await self._send_event("stop", stop=stop)
            except ConnectionClosed:
                pass
            self._close(why)
        await self._ws.close()
        await self._stop_tasks()

    async def reconnect(self, stream_url: str, signature: str, parameters: dict[str, str]) -> None:
        """The call's TwiML connects it to a stream again: a new stream on the same phone."""
        self._ws = await connect(
            stream_url,
            additional_headers={"X-Twilio-Signature": signature},
            proxy=None,
            compression=None,
        )
        self.stream_url, self.parameters = stream_url, parameters
        self.stream_sid, self._sequence, self._chunk = _sid("MZ"), 0, 0
        self.closed = asyncio.Event()
        self.timeline.append(Event(self.now(), "stream", stream_url))
        await self._start(restart=True)

    async def wait_closed(self, timeout: float = 10.0) -> None:
        """Wait for the server to end the stream."""
        async with asyncio.timeout(timeout):
            await self.closed.wait()
        await self._stop_tasks()

    async def _stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass(frozen=True)
class Answer:
    """How the bot answered an incoming call's webhook: where to stream, and as which call."""

    call_sid: str
    stream_url: str
    stream_signature: str  # X-Twilio-Signature of the stream's WebSocket upgrade
    parameters: dict[str, str]


async def answered(
    base_url: str,
    *,
    account_sid: str,
    auth_token: str,
    caller: str = "+15551230000",
    called: str = "+15557650000",
    signature: str | None = None,
    webhook_query: str = "",
    call_sid: str | None = None,
) -> Answer:
    """Post Twilio's signed incoming-call webhook to the bot at `base_url`; read its TwiML.

    `call_sid`: the call's SID (default: a new one; an old one replays that call's webhook).
    """
    form = voice_webhook_form(account_sid, call_sid or _sid("CA"), caller, called)
    url = f"{base_url.rstrip('/')}/voice" + (f"?{webhook_query}" if webhook_query else "")
    return await answer_webhook(url, form, auth_token=auth_token, signature=signature)


def voice_webhook_form(
    account_sid: str, call_sid: str, from_: str, to: str, *, direction: str = "inbound"
) -> dict[str, str]:
    """What Twilio posts to a call's voice URL: ringing for an incoming call, else answered."""
    return {
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "ringing" if direction == "inbound" else "in-progress",
        "Called": to,
        "Caller": from_,
        "Direction": direction,
        "From": from_,
        "To": to,
    }


async def answer_webhook(
    url: str, form: dict[str, str], *, auth_token: str, signature: str | None = None
) -> Answer:
    """Post a call's voice webhook to `url`, signed (or with `signature`); read its TwiML."""
    validator = RequestValidator(auth_token)
    status, twiml = await post_signed(url, form, auth_token=auth_token, signature=signature)
    if status != 200:
        raise DialError(f"POST {url} → HTTP {status}: {twiml[:200]}")
    stream_url, params = parse_stream(twiml)
    signed = validator.compute_signature(stream_url, {})
    return Answer(form["CallSid"], stream_url, signed, params)


async def signed_webhook(url: str, form: dict[str, str], *, auth_token: str) -> str:
    """POST `form` to `url` signed with `auth_token`, as Twilio does; the TwiML it answers."""
    status, body = await post_signed(url, form, auth_token=auth_token)
    if status != 200:
        raise DialError(f"POST {url} → HTTP {status}: {body[:200]}")
    return body


async def post_signed(
    url: str, form: dict[str, str], *, auth_token: str, signature: str | None = None
) -> tuple[int, str]:
    """POST `form` to `url` as Twilio does, X-Twilio-Signature and all; (status, body)."""
    signature = signature or RequestValidator(auth_token).compute_signature(url, form)
    target = URL(url, encoded=True)  # requested as given, as signed: no re-quoting
    async with (
        aiohttp.ClientSession() as session,
        session.post(target, data=form, headers={"X-Twilio-Signature": signature}) as r,
    ):
        return r.status, await r.text()


def parse_stream(twiml: str) -> tuple[str, dict[str, str]]:
    """The `<Connect><Stream>` of `twiml`: its URL and its parameters."""
    stream = ET.fromstring(twiml).find("./Connect/Stream")
    if stream is None or not stream.get("url"):
        raise DialError(f"TwiML has no <Connect><Stream url>: {twiml[:200]}")
    params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return stream.get("url", ""), params
