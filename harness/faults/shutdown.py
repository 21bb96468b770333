"""Shutdown: SIGTERM to `python bot.py serve` while two calls are in progress."""

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from harness.faults import Fault, Outcome
from pipelines.declaration import load_declarations
from recordings import RECORDINGS
from server.local import free_port
from standins.audio import pcm_to_ulaw
from standins.caller import BotTurn, SimulatedCall, signed_webhook
from standins.script import dial
from standins.speech import synthesize
from standins.stack import AUTH_TOKEN, StandIns, running_standins

ROOT = Path(__file__).parents[2]
GOODBYE_WAV = RECORDINGS / "goodbye.wav"
DRAIN_TIMEOUT_SECS = 5.0


@dataclass
class ShutdownRun:
    """Two calls through a SIGTERM: the outcome and its evidence."""

    outcome: Outcome
    workers: int = 1
    health_after_term: list[tuple[float, int, dict]] = field(default_factory=list)  # (s, status)
    voice_during_drain: str = ""  # TwiML a new call got
    farewell_heard: bool = False  # the call that said goodbye heard the whole farewell
    goodbye_heard: bool = False  # the silent call heard the whole shutdown goodbye
    goodbye_started: float | None = None  # seconds after SIGTERM
    hangups: dict[str, float] = field(default_factory=dict)  # REST hang-up, s after SIGTERM
    # The caller's last mark echo (its playout reached the end of the bot's audio), s after SIGTERM
    last_echo: dict[str, float] = field(default_factory=dict)
    leaving_sid: str = ""  # the call that says goodbye
    silent_sid: str = ""  # the call that stays silent
    exit_code: int | None = None
    exited_after: float | None = None  # seconds after SIGTERM
    log: str = ""  # the server's stderr
    # `voicebot_calls_in_progress` in /metrics, asked a few times (any worker may answer)
    calls_in_progress: list[float] = field(default_factory=list)
    # The calls' records after the exit (data/calls.db): call SID → (end_reason, turns)
    records: dict[str, tuple[str | None, list[str]]] = field(default_factory=dict)


async def sigterm_during_calls(workers: int = 1) -> ShutdownRun:
    """Two calls; SIGTERM; one caller says goodbye, the other stays silent until the end."""
    declarations = load_declarations()
    farewell = declarations["default"].bot.farewell
    goodbye = declarations["default"].bot.shutdown_goodbye
    run = ShutdownRun(Outcome(False, []), workers=workers)
    with tempfile.TemporaryDirectory() as cwd, tempfile.TemporaryFile("w+") as log:
        async with running_standins() as standins:
            server, url = await start_server(standins, workers, Path(cwd), log)
            try:
                await _drive(run, server, url, standins, farewell, goodbye)
            finally:
                if server.returncode is None:
                    server.kill()
                    await server.wait()
            log.seek(0)
            run.log = log.read()
            run.records = _records(Path(cwd) / "data" / "calls.db")
    run.outcome = _judge(run, farewell, goodbye)
    return run


async def start_server(
    standins: StandIns, workers: int, cwd: Path, log
) -> tuple[asyncio.subprocess.Process, str]:
    """`python bot.py serve` on a free port, pointed at `standins`; once it answers /health."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env = keep | standins.env() | {"PORT": str(port), "PUBLIC_URL": url, "WORKERS": str(workers)}
    env |= {"DRAIN_TIMEOUT_SECS": str(DRAIN_TIMEOUT_SECS), "MAX_CALLS": "10"}
    server = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bot.py"), "serve", cwd=cwd, env=env, stderr=log
    )
    await _wait_healthy(url, server)
    return server, url


async def _drive(
    run: ShutdownRun,
    server: asyncio.subprocess.Process,
    url: str,
    standins: StandIns,
    farewell: str,
    goodbye: str,
) -> None:
    leaving, silent = await asyncio.gather(_dial(url), _dial(url))
    run.leaving_sid, run.silent_sid = leaving.call_sid, silent.call_sid
    await asyncio.gather(leaving.listen(), silent.listen())
    run.calls_in_progress = await _calls_in_progress(url)
    server.send_signal(signal.SIGTERM)
    sigterm = time.monotonic()
    run.health_after_term = await _health_until_draining(url, sigterm)
    run.voice_during_drain = await _post_voice(url)
    farewell_turn, goodbye_turn = await asyncio.gather(
        _say_goodbye(leaving), _stay_silent(silent, sigterm)
    )
    for call in (leaving, silent):
        await call.wait_closed(timeout=10)
        if await standins.twilio.wait_for_hangup(call.call_sid, timeout=10):
            at = next(r.at for r in standins.twilio.requests if call.call_sid in r.path)
            run.hangups[call.call_sid] = at - sigterm
        if echoes := call.events("echo"):
            run.last_echo[call.call_sid] = echoes[-1].t - call.stream_time(sigterm)
    run.farewell_heard = farewell_turn is not None and _whole(farewell_turn, farewell)
    run.goodbye_heard = goodbye_turn is not None and _whole(goodbye_turn, goodbye)
    if goodbye_turn is not None:
        run.goodbye_started = goodbye_turn.start - silent.stream_time(sigterm)
    run.exit_code = await asyncio.wait_for(server.wait(), 60)
    run.exited_after = time.monotonic() - sigterm


async def _dial(url: str) -> SimulatedCall:
    return await dial(url)


async def _say_goodbye(call: SimulatedCall) -> BotTurn | None:
    await call.say(GOODBYE_WAV)
    try:
        return await call.listen(timeout=15, quiet=2.0)  # a playout gap is not the end
    except TimeoutError:
        return None


async def _stay_silent(call: SimulatedCall, sigterm: float) -> BotTurn | None:
    try:
        after = call.stream_time(sigterm)
        return await call.listen(after=after, timeout=DRAIN_TIMEOUT_SECS + 25, quiet=2.0)
    except TimeoutError:
        return None


def _whole(turn: BotTurn, text: str) -> bool:
    """The turn is exactly the stand-in voice saying `text` (to within one 40 ms chunk)."""
    expected = pcm_to_ulaw(synthesize(text).pcm)
    return abs(len(turn.ulaw) - len(expected)) <= 320 and expected.startswith(turn.ulaw[:-320])


async def _wait_healthy(url: str, server: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if server.returncode is not None:
                raise RuntimeError(f"bot.py serve exited with {server.returncode}")
            try:
                async with session.get(f"{url}/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url}/health never answered")


async def _health_until_draining(url: str, sigterm: float) -> list[tuple[float, int, dict]]:
    """Poll /health until it says draining; every answer, timed.

    Up to 10 s: with WORKERS > 1 uvicorn's supervisor forwards the signal from a loop that
    wakes every 0.5 s and health-checks each worker first, slow on a loaded machine.
    """
    answers = []
    async with aiohttp.ClientSession() as session:
        while time.monotonic() - sigterm < 10:
            async with session.get(f"{url}/health") as response:
                answers.append((time.monotonic() - sigterm, response.status, await response.json()))
            if response.status == 503:
                break
            await asyncio.sleep(0.02)
    return answers


async def _post_voice(url: str) -> str:
    form = {"CallSid": "CA" + "d" * 32, "From": "+15550009999", "To": "+15557650000"}
    return await signed_webhook(f"{url}/voice", form, auth_token=AUTH_TOKEN)


async def _calls_in_progress(url: str, asks: int = 4) -> list[float]:
    """What /metrics says of the calls in progress, `asks` times."""
    figures = []
    async with aiohttp.ClientSession() as session:
        for _ in range(asks):
            async with session.get(f"{url}/metrics") as response:
                text = await response.text()
            line = next(x for x in text.splitlines() if x.startswith("voicebot_calls_in_progress"))
            figures.append(float(line.split()[-1]))
    return figures


def _records(path: Path) -> dict[str, tuple[str | None, list[str]]]:
    """What the server's SQLite records say of each call: how it ended, the bot's words."""
    if not path.exists():
        return {}
    with contextlib.closing(sqlite3.connect(path)) as db:
        ended = dict(
            db.execute("SELECT call_sid, end_reason FROM calls WHERE ended_at IS NOT NULL")
        )
        said = db.execute("SELECT call_sid, heard FROM turns WHERE speaker = 'bot' ORDER BY seq")
        words: dict[str, list[str]] = {}
        for sid, heard in said:
            words.setdefault(sid, []).append(heard)
    return {sid: (reason, words.get(sid, [])) for sid, reason in ended.items()}


def _judge(run: ShutdownRun, farewell: str, goodbye: str) -> Outcome:
    problems = []
    if run.calls_in_progress != [2.0] * len(run.calls_in_progress):
        problems.append(f"/metrics counted {run.calls_in_progress} calls in progress, not 2")
    expected = {run.leaving_sid: "bot_farewell", run.silent_sid: "shutdown"}
    for sid, reason in expected.items():
        if run.records.get(sid, (None, []))[0] != reason:
            problems.append(f"{sid}'s record after the exit: {run.records.get(sid)}")
    if (run.records.get(run.silent_sid) or (None, [""]))[1][-1:] != [goodbye]:
        problems.append("the silent caller's record does not end with the shutdown goodbye")
    last = run.health_after_term[-1] if run.health_after_term else (None, None, {})
    if last[1] != 503 or last[2].get("status") != "draining":
        problems.append(f"/health after SIGTERM: {run.health_after_term}")
    root = ET.fromstring(run.voice_during_drain) if run.voice_during_drain.startswith("<") else []
    if [child.tag for child in root] != ["Say", "Hangup"]:
        problems.append(f"a new call during the drain got {run.voice_during_drain[:200]!r}")
    if not run.farewell_heard:
        problems.append("the caller who said goodbye did not hear the whole farewell")
    if not run.goodbye_heard:
        problems.append("the silent caller did not hear the whole shutdown goodbye")
    if run.goodbye_started is not None and run.goodbye_started < DRAIN_TIMEOUT_SECS:
        problems.append(f"the goodbye started {run.goodbye_started:.1f} s after SIGTERM")
    for sid in (run.leaving_sid, run.silent_sid):
        if sid not in run.hangups:
            problems.append(f"no REST hang-up for {sid}")
        elif sid in run.last_echo and run.hangups[sid] < run.last_echo[sid]:
            problems.append(f"{sid} was hung up before its last words had played")
    if run.exit_code != 0:
        problems.append(f"the server exited with {run.exit_code}")
    heard = [
        f"caller who said goodbye: {farewell if run.farewell_heard else '?'}",
        f"silent caller: {goodbye if run.goodbye_heard else '?'}",
        "new caller: busy [hang-up]",
    ]
    return Outcome(not problems, heard, _figures(run), problems)


def _figures(run: ShutdownRun) -> str:
    health = run.health_after_term[-1][0] if run.health_after_term else float("nan")
    started = f"{run.goodbye_started:.1f}" if run.goodbye_started is not None else "?"
    sids = (run.leaving_sid, run.silent_sid)
    hangups = "/".join(f"{run.hangups.get(sid, float('nan')):.1f}" for sid in sids)
    exited = f"{run.exited_after:.1f}" if run.exited_after is not None else "?"
    return (
        f"WORKERS={run.workers}, DRAIN_TIMEOUT_SECS={DRAIN_TIMEOUT_SECS:g}: /health 503 "
        f"{health * 1000:.0f} ms after SIGTERM; shutdown goodbye began at {started} s; "
        f"REST hang-ups at {hangups} s (farewell/goodbye); exit {run.exit_code} at {exited} s"
    )


async def _sigterm_outcome(workers: int) -> Outcome:
    return (await sigterm_during_calls(workers)).outcome


FAULTS = [
    Fault(
        name="SIGTERM during calls",
        injected=(
            "SIGTERM to `python bot.py serve` (WORKERS=1) with two calls up: one says "
            "goodbye, one stays silent"
        ),
        run=lambda: _sigterm_outcome(1),
    ),
    Fault(
        name="SIGTERM during calls, two workers",
        injected="the same with WORKERS=2: uvicorn's supervisor forwards SIGTERM to each worker",
        run=lambda: _sigterm_outcome(2),
    ),
]
