"""Overload: more calls than MAX_CALLS while the admitted ones talk."""

import asyncio
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import aiohttp
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from harness.faults import Fault, Outcome, bot_with, dial
from pipelines.declaration import ENGLISH_LINES
from recordings import RECORDINGS
from standins.audio import pcm_to_ulaw
from standins.caller import SimulatedCall
from standins.script import BOOKING_REPLY
from standins.speech import synthesize
from standins.stack import ACCOUNT_SID, AUTH_TOKEN

BUSY_LINE = ENGLISH_LINES["busy"]

BOOK_TABLE = RECORDINGS / "book_table.wav"
MAX_CALLS = 2
HAMMERS = 4  # concurrent loops of extra attempts, alternating /voice and /media
PAUSE_SECS = 0.05


@dataclass
class Attempts:
    """What the extra callers got while the admitted calls talked."""

    voice: list[str] = field(default_factory=list)  # TwiML answered to each extra POST /voice
    voice_statuses: list[int] = field(default_factory=list)
    media: list[int | str] = field(default_factory=list)  # HTTP status of each upgrade, or error

    @property
    def busy(self) -> int:
        """How many /voice answers were the busy TwiML (a `<Say>` then `<Hangup/>`)."""
        return sum(_is_busy(twiml) for twiml in self.voice)


@dataclass
class Turn:
    """One admitted caller's turn: the booking line said, the reply heard."""

    latency: float  # reply heard, seconds after the caller's speech ended
    heard_reply: bool  # the whole booking reply, byte for byte (gaps in playout aside)
    gaps: int  # playout underruns within the reply


@dataclass
class OverloadRun:
    """MAX_CALLS calls talking while extra calls hammer the server: outcome and evidence."""

    outcome: Outcome
    calm: list[Turn] = field(default_factory=list)  # each admitted call's turn, alone
    hammered: list[Turn] = field(default_factory=list)  # and while extra calls hammer
    attempts: Attempts = field(default_factory=Attempts)
    health: dict = field(default_factory=dict)  # /health while hammered
    stt_connections: int = 0  # calls that got a pipeline (one Deepgram socket each)


async def over_max_calls() -> OverloadRun:
    """MAX_CALLS calls each take a turn calmly, then another while extras hammer the server."""
    async with bot_with(env={"MAX_CALLS": str(MAX_CALLS)}) as (bot, standins):
        calls = await asyncio.gather(*(dial(bot) for _ in range(MAX_CALLS)))
        await asyncio.gather(*(call.listen() for call in calls))
        calm = await asyncio.gather(*(_turn(call) for call in calls))
        attempts = Attempts()
        stop = asyncio.Event()
        hammers = [asyncio.create_task(_hammer(bot.url, attempts, stop)) for _ in range(HAMMERS)]
        hammered = await asyncio.gather(*(_turn(call) for call in calls))
        health = await _health(bot.url)
        stop.set()
        await asyncio.gather(*hammers)
        run = OverloadRun(
            outcome=Outcome(False, []),
            calm=calm,
            hammered=hammered,
            attempts=attempts,
            health=health,
            stt_connections=len(standins.stt.connections),
        )
        await asyncio.gather(*(call.hang_up() for call in calls))
    run.outcome = _judge(run)
    return run


async def _turn(call: SimulatedCall) -> Turn:
    """Say the booking line and listen to the reply."""
    await call.say(BOOK_TABLE)
    spoke_until = call.events("sent_speech_end")[-1].t
    reply = await call.listen(timeout=15)
    expected = pcm_to_ulaw(synthesize(BOOKING_REPLY).pcm)
    # To within one 40 ms chunk: the last mark's audio may still be playing.
    whole = abs(len(reply.ulaw) - len(expected)) <= 320 and expected.startswith(reply.ulaw[:-320])
    stretches = [s for s in call.heard if s.start >= reply.start]
    return Turn(reply.start - spoke_until, whole, len(stretches) - 1)


async def _hammer(url: str, attempts: Attempts, stop: asyncio.Event) -> None:
    """Extra calls, one after another until `stop`: a signed /voice, then a signed upgrade."""
    validator = RequestValidator(AUTH_TOKEN)
    voice_url = f"{url}/voice"
    # Signed, with a token that was never issued: a full server refuses before reading it.
    media_url = url.replace("http", "ws", 1) + "/media/not-a-stream-token"
    form = {"AccountSid": ACCOUNT_SID, "CallSid": "CA" + "e" * 32, "From": "+1555", "To": "+1666"}
    headers = {"X-Twilio-Signature": validator.compute_signature(voice_url, form)}
    media_headers = {"X-Twilio-Signature": validator.compute_signature(media_url, {})}
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            async with session.post(voice_url, data=form, headers=headers) as response:
                attempts.voice_statuses.append(response.status)
                attempts.voice.append(await response.text())
            try:
                async with connect(media_url, additional_headers=media_headers, proxy=None):
                    attempts.media.append(101)  # admitted: must not happen
            except InvalidStatus as e:
                attempts.media.append(e.response.status_code)
            except OSError as e:
                attempts.media.append(type(e).__name__)
            await asyncio.sleep(PAUSE_SECS)


async def _health(url: str) -> dict:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/health") as response:
        return await response.json()


def _is_busy(twiml: str) -> bool:
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError:
        return False
    return [child.tag for child in root] == ["Say", "Hangup"] and root[0].text == ENGLISH_LINES[
        "busy"
    ]


def _judge(run: OverloadRun) -> Outcome:
    problems = []
    for number, turn in enumerate(run.hammered, 1):
        if not turn.heard_reply:
            problems.append(f"admitted call {number} did not hear the booking reply when hammered")
    extra = run.attempts
    if not extra.voice or extra.busy != len(extra.voice):
        problems.append(f"{extra.busy} of {len(extra.voice)} extra POST /voice got busy TwiML")
    refused = sum(status == 503 for status in extra.media)
    if not extra.media or refused != len(extra.media):
        problems.append(f"{refused} of {len(extra.media)} extra upgrades refused with 503")
    if run.health.get("server_calls") != MAX_CALLS:
        problems.append(f"/health reported {run.health} during the hammering")
    if run.stt_connections != MAX_CALLS:
        problems.append(f"{run.stt_connections} pipelines started for {MAX_CALLS} admitted calls")
    heard = [f"admitted: {BOOKING_REPLY if t.heard_reply else '?'}" for t in run.hammered]
    heard.append(f"extra callers: {ENGLISH_LINES['busy']} [hang-up]")
    return Outcome(not problems, heard, _figures(run), problems)


def _figures(run: OverloadRun) -> str:
    extra = run.attempts
    return (
        f"{len(extra.voice)} extra /voice → {extra.busy} busy TwiML, {len(extra.media)} extra "
        f"upgrades → {sum(s == 503 for s in extra.media)} × 503; admitted calls' reply after "
        f"speech end: {_latencies(run.calm)} calm, {_latencies(run.hammered)} hammered"
    )


def _latencies(turns: list[Turn]) -> str:
    seconds = "/".join(f"{t.latency:.2f}" for t in turns)
    return f"{seconds} s ({sum(t.gaps for t in turns)} playout gaps)"


async def _over_max_calls_outcome() -> Outcome:
    return (await over_max_calls()).outcome


FAULTS = [
    Fault(
        name="over MAX_CALLS",
        injected=(
            f"MAX_CALLS={MAX_CALLS} calls talking while {HAMMERS} loops of extra signed "
            "POST /voice and /media upgrades hammer the server"
        ),
        run=_over_max_calls_outcome,
    ),
]
