"""Calls through nginx to three `python bot.py serve` instances that share one PostgreSQL.

    python -m harness.load_balancer        (or: make load-balancer)

Each instance is its own process (one uvicorn worker) on its own port, started as the bench
starts a server (bench/servers.py), with PUBLIC_URL set to nginx's address so Twilio's
signatures, computed on the public URL, validate behind it. nginx (harness/nginx.py) balances
round-robin; a readiness probe here takes an instance whose `/health` says draining out of
nginx's upstream. One throwaway PostgreSQL is every instance's DATABASE_URL; the providers are
the stand-ins. The scenarios, in this order on one cluster:

1. calls spread over the instances, each hearing its greeting and the reply to its booking;
2. those calls dialed one at a time: each one's webhook and stream are two requests in a row,
   which round-robin sends to two instances: the webhook answered by one, the stream by another;
3. the first call's media upgrade replayed after it ended: refused by every instance;
4. a burst of twice MAX_CALLS calls at once: MAX_CALLS admitted over all the instances;
5. an instance SIGKILLed mid-call: its callers cut off, its calls no longer counted, the
   other instances' calls going on, and nginx retrying new requests around it;
6. an instance drained by SIGTERM: its call goes on; calls dialed before the readiness probe
   looks still reach it (nginx's passive checks alone do not see a drain); once it is out,
   new calls go to the instance left.
"""

import asyncio
import secrets
import signal
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import TypeVar

import aiohttp
from loguru import logger
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bench.servers import BotServer, ours, running
from harness.nginx import FAIL_TIMEOUT_SECS, Nginx
from harness.postgres import ThrowawayPostgres
from recordings import recording
from server.local import free_port
from standins.audio import pcm_to_ulaw
from standins.caller import (
    Answer,
    BotTurn,
    DialError,
    SimulatedCall,
    parse_stream,
    post_signed,
    voice_webhook_form,
)
from standins.script import BOOKING_REPLY, GREETING, dial
from standins.speech import synthesize
from standins.stack import ACCOUNT_SID, AUTH_TOKEN, StandIns, running_standins

INSTANCES = ("A", "B", "C")
MAX_CALLS = 4  # over all the instances together
DRAIN_TIMEOUT_SECS = 30  # longer than scenario 6: the drained instance's call ends on its own
PROBE_SECS = 0.25  # the readiness probe's period
GUARD_SECS = 30.0  # bound on waiting for what should happen within seconds
UNPROBED_CALLS = 4  # dialed during the drain before the readiness probe takes the instance out
BOOK_TABLE = recording("book_table.wav")
T = TypeVar("T")


@dataclass
class Instance:
    """One `python bot.py serve` behind nginx."""

    name: str
    server: BotServer

    @property
    def port(self) -> int:
        """Its own port (callers reach it through nginx's)."""
        return int(self.server.url.rsplit(":", 1)[1])

    @property
    def address(self) -> str:
        """`host:port`, as nginx names it."""
        return self.server.url.removeprefix("http://")

    @property
    def pid(self) -> int:
        """Its process (one uvicorn worker: the one that serves, as `/health` says)."""
        return self.server.process.pid

    def log(self) -> str:
        """What it logged so far (INFO)."""
        return Path(self.server.log).read_text(errors="replace")

    async def health(self) -> tuple[int | None, dict]:
        """`GET /health` straight to it: (status, body), (None, {}) when it does not answer."""
        return await _health(self.server.url)


@dataclass
class Cluster:
    """The instances behind nginx, the stand-ins, and who took which instance out."""

    url: str  # nginx: every instance's PUBLIC_URL
    instances: list[Instance]
    nginx: Nginx
    standins: StandIns
    taken_out: dict[str, float] = field(default_factory=dict)  # name → monotonic time
    probe_paused: bool = False  # the readiness probe looks at nothing meanwhile
    _took_out: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    def took_out(self, name: str) -> None:
        """The readiness probe took the instance `name` out of nginx's upstream."""
        self.taken_out[name] = time.monotonic()
        self._took_out.set()

    async def wait_taken_out(self, name: str) -> float:
        """When the instance `name` was taken out (monotonic), once it has been."""
        while name not in self.taken_out:
            self._took_out.clear()
            await self._took_out.wait()
        return self.taken_out[name]

    async def served(self, call_sid: str) -> tuple[str, str]:
        """Which instance answered the call's webhook and which serves its stream (from logs)."""
        webhook = stream = "?"
        with suppress(TimeoutError):
            async with asyncio.timeout(10):
                while "?" in (webhook, stream):
                    for instance in self.instances:
                        log = instance.log()
                        if f"incoming call {call_sid} " in log:
                            webhook = instance.name
                        if f"{call_sid} call started with pipeline" in log:
                            stream = instance.name
                    await asyncio.sleep(0.05)
        return webhook, stream


@dataclass
class CallSeen:
    """One call: where nginx sent it, and the bot's lines the caller heard, in order."""

    sid: str
    webhook: str  # the instance that answered POST /voice
    stream: str  # the instance that served the media stream
    heard: list[str] = field(default_factory=list)
    stream_url: str = field(default="", repr=False)  # the `<Stream url>` its TwiML gave


@dataclass
class Spread:
    """Scenarios 1 and 2: calls dialed one after another, then all talking at once."""

    calls: list[CallSeen]

    @property
    def split(self) -> list[CallSeen]:
        """The calls whose webhook one instance answered and whose stream another served."""
        return [call for call in self.calls if call.webhook != call.stream]

    @property
    def streams(self) -> dict[str, int]:
        """Calls per instance (their media streams)."""
        return dict(Counter(call.stream for call in self.calls))


@dataclass
class Replay:
    """Scenario 3: a call's media upgrade, replayed with its signature after the call."""

    statuses: dict[str, int | str]  # instance name (or "nginx") → HTTP status of the upgrade


@dataclass
class Burst:
    """Scenario 4: 2 × MAX_CALLS calls at once through nginx."""

    outcomes: list[str]  # per call: "admitted" (heard the greeting), "busy", "refused 503", …
    server_calls: dict[str, int | None]  # each instance's /health while the admitted talked
    admitted_at: dict[str, int]  # admitted calls per instance (their streams)

    def count(self, outcome: str) -> int:
        """How many calls had `outcome`."""
        return self.outcomes.count(outcome)


@dataclass
class Kill:
    """Scenario 5: one instance SIGKILLed with calls up on every instance."""

    killed: str = ""
    cut_off: list[bool] = field(default_factory=list)  # its callers: socket closed by the server
    server_calls_before: int | None = None  # on a survivor, before the kill
    server_calls_after: int | None = None  # on it once the count dropped (or at the guard)
    freed_after: float | None = None  # seconds from the kill to that drop
    survivors: list[CallSeen] = field(default_factory=list)  # the other instances' calls
    after: CallSeen | None = None  # a call placed once the count dropped
    retried: int = 0  # requests nginx sent to the dead instance first, then to another


@dataclass
class Drained:
    """Scenario 6: one instance drained by SIGTERM while another takes the new calls."""

    drained: str = ""
    kept: str = ""
    health: tuple[int | None, dict] = (None, {})  # the drained one's /health, once out
    # Calls dialed one at a time while it drained, before the probe looked: nginx's passive
    # checks alone. "busy": the webhook landed on it; "refused 503": the stream did.
    unprobed: list[str] = field(default_factory=list)
    taken_out_after: float | None = None  # seconds from the probe looking to nginx reloaded
    held: CallSeen | None = None  # its call in progress, talking on through the drain
    new_calls: list[CallSeen] = field(default_factory=list)  # placed during the drain
    exit_code: int | None = None
    exited_after: float | None = None  # seconds from SIGTERM


@dataclass
class LoadBalancerRun:
    """Everything the scenarios measured."""

    instances: dict[str, tuple[int, int]]  # name → (port, pid)
    nginx_port: int
    spread: Spread
    replay: Replay
    burst: Burst
    kill: Kill
    drain: Drained
    seconds: dict[str, float]  # per step: "start", the scenarios "1"…"6", "stop"


@cache
def _expected_ulaw(text: str) -> bytes:
    return pcm_to_ulaw(synthesize(text).pcm)


def heard_line(turn: BotTurn, lines: tuple[str, ...] = (GREETING, BOOKING_REPLY)) -> str:
    """Which of `lines` the caller heard, whole (to within one 40 ms chunk), or what instead."""
    for text in lines:
        expected = _expected_ulaw(text)
        whole = abs(len(turn.ulaw) - len(expected)) <= 320
        if whole and expected.startswith(turn.ulaw[:-320]):
            return text
    return f"? ({turn.duration:.1f} s of other audio)"


async def load_balanced_calls() -> LoadBalancerRun:
    """Start the cluster, run the six scenarios in order, and say what each measured."""
    clock = _Stopwatch()
    async with running_cluster() as cluster:
        clock.lap("start")
        spread = await clock.timed("1-2", calls_spread(cluster))
        replay = await clock.timed("3", replayed_upgrade(cluster, spread.calls[0]))
        burst = await clock.timed("4", burst_at_max_calls(cluster))
        kill = await clock.timed("5", instance_killed(cluster))
        drain = await clock.timed("6", instance_drained(cluster, dead=kill.killed))
        instances = {i.name: (i.port, i.pid) for i in cluster.instances}
    clock.lap("stop")
    return LoadBalancerRun(
        instances=instances,
        nginx_port=cluster.nginx.port,
        spread=spread,
        replay=replay,
        burst=burst,
        kill=kill,
        drain=drain,
        seconds=clock.laps,
    )


class _Stopwatch:
    """Seconds per step, in order."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name], self._last = now - self._last, now

    async def timed(self, name: str, step: Awaitable[T]) -> T:
        result = await step
        self.lap(name)
        return result


@asynccontextmanager
async def running_cluster() -> AsyncIterator[Cluster]:
    """PostgreSQL, the stand-ins, the instances, nginx, the readiness probe; stopped after."""
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    postgres = ThrowawayPostgres()
    try:
        await asyncio.to_thread(postgres.start)
        database_url = await asyncio.to_thread(postgres.new_database)
        async with running_standins() as standins, AsyncExitStack() as stack:
            env = standins.env() | {"DATABASE_URL": database_url}
            servers = await _start_all(stack, env, public_url)
            for server in servers:
                stack.callback(Path(server.log).unlink, missing_ok=True)
            instances = [
                Instance(name, server) for name, server in zip(INSTANCES, servers, strict=True)
            ]
            nginx = Nginx(port, [instance.address for instance in instances])
            await stack.enter_async_context(nginx)
            cluster = Cluster(public_url, instances, nginx, standins)
            probe = asyncio.create_task(_readiness_probe(cluster), name="readiness-probe")
            try:
                yield cluster
            finally:
                probe.cancel()
                with suppress(asyncio.CancelledError):
                    await probe
    finally:
        await asyncio.to_thread(postgres.remove)


async def _start_all(stack: AsyncExitStack, env: dict[str, str], public_url: str) -> list:
    """Start every instance at once (each loads its models); all stopped by `stack`."""
    own = (("MAX_CALLS", str(MAX_CALLS)), ("DRAIN_TIMEOUT_SECS", str(DRAIN_TIMEOUT_SECS)))
    bots = [replace(ours(1, 0.0, name=f"lb-{name}"), env=own) for name in INSTANCES]
    servers = await asyncio.gather(
        *(
            stack.enter_async_context(running(bot, env, log_level="INFO", public_url=public_url))
            for bot in bots
        ),
        return_exceptions=True,
    )
    for server in servers:
        if isinstance(server, BaseException):
            raise server
    return servers


async def _readiness_probe(cluster: Cluster) -> None:
    """/health as a readiness probe: an instance that answers 503 (draining) leaves nginx.

    Open-source nginx checks nothing by itself; this is what an orchestrator's probe does.
    An instance that does not answer at all is nginx's own passive check's business.
    """
    async with aiohttp.ClientSession() as session:
        while True:
            for instance in cluster.instances:
                if cluster.probe_paused or instance.name in cluster.taken_out:
                    continue
                status, _ = await _health(instance.server.url, session)
                if status == 503 and not cluster.probe_paused:  # paused while it asked
                    await cluster.nginx.take_out(instance.address)
                    cluster.took_out(instance.name)
            await asyncio.sleep(PROBE_SECS)


async def _health(
    url: str, session: aiohttp.ClientSession | None = None
) -> tuple[int | None, dict]:
    """`GET {url}/health`: (status, body), or (None, {}) when nothing answers."""
    async with AsyncExitStack() as stack:
        if session is None:
            session = await stack.enter_async_context(aiohttp.ClientSession())
        try:
            timeout = aiohttp.ClientTimeout(total=2)
            async with session.get(f"{url}/health", timeout=timeout) as response:
                return response.status, await response.json()
        except (aiohttp.ClientError, TimeoutError):
            return None, {}


# -- the scenarios ------------------------------------------------------------------------


async def calls_spread(cluster: Cluster) -> Spread:
    """Scenarios 1 and 2: MAX_CALLS calls dialed one at a time, then all talking at once.

    Dialing is two requests, the webhook then the stream's upgrade: with nothing else going
    through nginx they are consecutive, and round-robin sends them to two instances.
    """
    calls = [await dial(cluster.url) for _ in range(MAX_CALLS)]
    seen = [await _seen(cluster, call) for call in calls]
    await asyncio.gather(*(_greeting_then_booking(c, s) for c, s in zip(calls, seen, strict=True)))
    await _hang_up(cluster, calls)
    return Spread(seen)


async def replayed_upgrade(cluster: Cluster, call: CallSeen) -> Replay:
    """Scenario 3: the ended `call`'s upgrade again, same URL and signature (Twilio's).

    To every instance straight (the signature covers the public URL, not the Host), then
    through nginx.
    """
    signature = RequestValidator(AUTH_TOKEN).compute_signature(call.stream_url, {})
    statuses: dict[str, int | str] = {}
    for instance in cluster.instances:
        direct = call.stream_url.replace(f":{cluster.nginx.port}/", f":{instance.port}/", 1)
        statuses[instance.name] = await _upgrade_status(direct, signature)
    statuses["nginx"] = await _upgrade_status(call.stream_url, signature)
    return Replay(statuses)


async def burst_at_max_calls(cluster: Cluster) -> Burst:
    """Scenario 4: 2 × MAX_CALLS calls at once; the admitted hold on until all are counted."""
    attempts = await asyncio.gather(*(_attempt(cluster.url) for _ in range(2 * MAX_CALLS)))
    admitted = [call for _, call in attempts if call is not None]
    server_calls = {}
    for instance in cluster.instances:
        server_calls[instance.name] = (await instance.health())[1].get("server_calls")
    streams = [(await cluster.served(call.call_sid))[1] for call in admitted]
    await _hang_up(cluster, admitted)
    return Burst([outcome for outcome, _ in attempts], server_calls, dict(Counter(streams)))


async def instance_killed(cluster: Cluster) -> Kill:
    """Scenario 5: three calls (one stream per instance), then SIGKILL to the first's.

    Its caller should be cut off, the others talk on, and a survivor's `server_calls` drop
    (the dead call's lease expired); then a new call is dialed through nginx.
    """
    calls = [await dial(cluster.url) for _ in range(len(cluster.instances))]
    seen = [await _seen(cluster, call) for call in calls]
    await asyncio.gather(*(_greeting(call, s) for call, s in zip(calls, seen, strict=True)))
    victim = next(i for i in cluster.instances if i.name == seen[0].stream)
    survivor = next(i for i in cluster.instances if i is not victim)
    kill = Kill(killed=victim.name)
    kill.server_calls_before = (await survivor.health())[1].get("server_calls")
    cut = [(c, s) for c, s in zip(calls, seen, strict=True) if s.stream == victim.name]
    going_on = [(c, s) for c, s in zip(calls, seen, strict=True) if s.stream != victim.name]
    kill.survivors = [s for _, s in going_on]
    victim.server.process.kill()
    killed_at, killed_unix = time.monotonic(), time.time()

    async def a_call_once_freed() -> SimulatedCall:
        before = kill.server_calls_before or 0
        with suppress(TimeoutError):
            async with asyncio.timeout(GUARD_SECS):
                while True:
                    kill.server_calls_after = (await survivor.health())[1].get("server_calls")
                    if kill.server_calls_after is not None and kill.server_calls_after < before:
                        kill.freed_after = time.monotonic() - killed_at
                        break
                    await asyncio.sleep(0.1)
        after = await dial(cluster.url)
        kill.after = await _seen(cluster, after)
        await _greeting(after, kill.after)
        return after

    cut_off, after, *_ = await asyncio.gather(
        asyncio.gather(*(_cut_off(call) for call, _ in cut)),
        a_call_once_freed(),
        *(_booking(call, s) for call, s in going_on),
    )
    kill.cut_off = list(cut_off)
    await _hang_up(cluster, [after, *(call for call, _ in going_on)])
    kill.retried = sum(
        line.retried and line.upstreams[0] == victim.address and line.at >= killed_unix
        for line in cluster.nginx.access_log()
    )
    return kill


async def instance_drained(cluster: Cluster, *, dead: str) -> Drained:
    """Scenario 6: a call up on one instance; SIGTERM to it; new calls while it drains.

    SIGTERM as soon as the call's stream is up; its call goes on meanwhile (its greeting,
    then a booking). With the readiness probe paused, UNPROBED_CALLS calls are dialed: what
    nginx's passive checks alone do. Once the probe took the instance out, two more calls
    are dialed (their greeting heard).
    """
    drain = Drained()
    held = await dial(cluster.url)
    drain.held = await _seen(cluster, held)
    draining = next(i for i in cluster.instances if i.name == drain.held.stream)
    kept = next(i for i in cluster.instances if i.name not in (dead, draining.name))
    drain.drained, drain.kept = draining.name, kept.name
    cluster.probe_paused = True
    draining.server.process.send_signal(signal.SIGTERM)
    sigterm = time.monotonic()
    talking = asyncio.create_task(_greeting_then_booking(held, drain.held))
    with suppress(TimeoutError):
        async with asyncio.timeout(GUARD_SECS):
            while (await draining.health())[0] != 503:  # noqa: ASYNC110 (another process)
                await asyncio.sleep(0.05)
    for _ in range(UNPROBED_CALLS):
        outcome, call = await _attempt(cluster.url, greet=False)
        drain.unprobed.append(outcome)
        if call is not None:
            await _hang_up(cluster, [call], still_up=1)
    cluster.probe_paused = False
    looking = time.monotonic()
    with suppress(TimeoutError):
        async with asyncio.timeout(GUARD_SECS):
            drain.taken_out_after = await cluster.wait_taken_out(draining.name) - looking
    drain.health = await draining.health()
    new = [await dial(cluster.url) for _ in range(2)]
    drain.new_calls = [await _seen(cluster, call) for call in new]
    await asyncio.gather(
        talking, *(_greeting(call, s) for call, s in zip(new, drain.new_calls, strict=True))
    )
    await _hang_up(cluster, [held, *new])
    with suppress(TimeoutError):
        drain.exit_code = await asyncio.wait_for(draining.server.process.wait(), GUARD_SECS)
        drain.exited_after = time.monotonic() - sigterm
    return drain


# -- what the callers do ------------------------------------------------------------------


async def _seen(cluster: Cluster, call: SimulatedCall) -> CallSeen:
    """The call, with the instances that serve it (nothing heard yet)."""
    webhook, stream = await cluster.served(call.call_sid)
    return CallSeen(call.call_sid, webhook, stream, stream_url=call.stream_url)


async def _greeting(call: SimulatedCall, seen: CallSeen) -> None:
    await _heard(call, seen, call.listen(timeout=15))


async def _booking(call: SimulatedCall, seen: CallSeen) -> None:
    await call.say(BOOK_TABLE)
    await _heard(call, seen, call.listen(timeout=20))


async def _greeting_then_booking(call: SimulatedCall, seen: CallSeen) -> None:
    await _greeting(call, seen)
    await _booking(call, seen)


async def _heard(call: SimulatedCall, seen: CallSeen, turn: Awaitable[BotTurn]) -> None:
    try:
        seen.heard.append(heard_line(await turn))
    except TimeoutError:
        closed = " (the line went dead)" if call.closed.is_set() else ""
        seen.heard.append(f"nothing{closed}")


async def _cut_off(call: SimulatedCall) -> bool:
    """Whether the server side closed the caller's stream within seconds."""
    try:
        await call.wait_closed(timeout=10)
    except TimeoutError:
        return False
    return True


async def _attempt(url: str, *, greet: bool = True) -> tuple[str, SimulatedCall | None]:
    """One caller: what became of the call, and the call if it was admitted.

    `greet`: "admitted" only once the whole greeting was heard (else: once streaming).
    """
    call_sid = "CA" + secrets.token_hex(16)
    form = voice_webhook_form(ACCOUNT_SID, call_sid, "+15551230000", "+15557650000")
    status, twiml = await post_signed(f"{url}/voice", form, auth_token=AUTH_TOKEN)
    if status == 200 and _is_busy(twiml):
        return "busy", None
    try:
        stream_url, parameters = parse_stream(twiml)
    except (DialError, ET.ParseError):
        return f"webhook answered {status}: {twiml[:80]!r}", None
    signature = RequestValidator(AUTH_TOKEN).compute_signature(stream_url, {})
    answered = Answer(call_sid, stream_url, signature, parameters)
    try:
        call = await SimulatedCall.join(answered, account_sid=ACCOUNT_SID)
    except InvalidStatus as e:
        return f"refused {e.response.status_code}", None
    if not greet:
        return "admitted", call
    seen = CallSeen(call.call_sid, "", "")
    await _greeting(call, seen)
    return ("admitted" if seen.heard == [GREETING] else f"admitted, heard {seen.heard}"), call


def _is_busy(twiml: str) -> bool:
    """Whether the TwiML is the busy answer: the pipeline's busy line, then a hang-up."""
    with suppress(ET.ParseError):
        return [child.tag for child in ET.fromstring(twiml)] == ["Say", "Hangup"]
    return False


async def _upgrade_status(url: str, signature: str) -> int | str:
    """The HTTP status a signed media upgrade gets (101: accepted, then closed at once)."""
    try:
        async with connect(url, additional_headers={"X-Twilio-Signature": signature}, proxy=None):
            return 101
    except InvalidStatus as e:
        return e.response.status_code
    except OSError as e:
        return type(e).__name__


async def _hang_up(cluster: Cluster, calls: list[SimulatedCall], *, still_up: int = 0) -> None:
    """Hang the calls up; return once the instances count only the `still_up` other calls.

    Both counts: the live instances' own calls added up, and each one's `server_calls`
    (every instance's, from the database), so the next scenario starts with places free.
    """
    await asyncio.gather(*(call.hang_up() for call in calls))
    with suppress(TimeoutError):
        async with asyncio.timeout(GUARD_SECS):
            while await _counts(cluster) != (still_up, {still_up}):  # noqa: ASYNC110
                await asyncio.sleep(0.1)


async def _counts(cluster: Cluster) -> tuple[int, set[int | None]]:
    """The live instances' own calls added up, and the `server_calls` they report."""
    own, server = 0, set()
    for instance in cluster.instances:
        if instance.server.process.returncode is None:
            status, body = await instance.health()
            own += body.get("calls", 0) if status else 0
            server.add(body.get("server_calls"))
    return own, server


# -- the report ---------------------------------------------------------------------------


def report(run: LoadBalancerRun) -> str:
    """The figures of every scenario, readable."""
    spread, burst, kill, drain = run.spread, run.burst, run.kill, run.drain
    instances = ", ".join(f"{n} port {p} pid {pid}" for n, (p, pid) in run.instances.items())
    lines = [
        f"nginx on port {run.nginx_port}, round-robin over {len(run.instances)} instances "
        f"({instances}); MAX_CALLS {MAX_CALLS} over all of them",
        f"nginx: one worker, round-robin; a dead instance: proxy_next_upstream error timeout, "
        f"max_fails=1 fail_timeout={FAIL_TIMEOUT_SECS}s (no retry on 503: a full instance's "
        f"refusal); a draining one: /health 503 seen by the readiness probe here → down, reload",
        f"{sum(run.seconds.values()):.0f} s in all: "
        + ", ".join(f"{step} {seconds:.0f} s" for step, seconds in run.seconds.items()),
        "",
        f"1. {len(spread.calls)} calls spread over the instances: streams per instance "
        f"{_per_instance(spread.streams, run)}",
        *(_call_line(call) for call in spread.calls),
        "",
        f"2. webhook answered by one instance, stream served by another: {len(spread.split)} "
        f"of {len(spread.calls)} calls (each dialed alone: two requests in a row)",
        "",
        "3. the first call's media upgrade replayed after it ended (same URL, same signature): "
        + ", ".join(f"{where} {status}" for where, status in run.replay.statuses.items())
        + " (403: refused as a replay; 101: accepted)",
        "",
        f"4. a burst of {len(burst.outcomes)} calls at once: {burst.count('admitted')} admitted "
        f"(streams {_per_instance(burst.admitted_at, run)}), {burst.count('busy')} answered "
        f"busy TwiML, {burst.count('refused 503')} upgrades refused 503"
        + "".join(f", {o}" for o in burst.outcomes if o not in ("admitted", "busy", "refused 503"))
        + f"; /health server_calls meanwhile: {_per_instance(burst.server_calls, run)}",
        "",
        f"5. instance {kill.killed} SIGKILLed with one call on each instance: its caller's "
        f"socket closed: {_yes(all(kill.cut_off) and bool(kill.cut_off))}; server_calls on a "
        f"survivor {kill.server_calls_before} → {kill.server_calls_after} "
        + (
            f"{kill.freed_after:.1f} s after the kill"
            if kill.freed_after is not None
            else f"(no drop within {GUARD_SECS:g} s)"
        ),
        *(_call_line(call, "   the other instances' calls go on: ") for call in kill.survivors),
        *([_call_line(kill.after, "   a new call after the kill: ")] if kill.after else []),
        f"   requests nginx tried on the dead instance first, then served elsewhere: "
        f"{kill.retried}",
        "",
        f"6. instance {drain.drained} drained by SIGTERM, {drain.kept} taking the new calls: "
        f"/health {drain.health[0]} {drain.health[1].get('status')}",
        f"   {len(drain.unprobed)} calls dialed before the readiness probe looked (nginx's "
        f"passive checks alone): {drain.unprobed.count('busy')} answered busy by the draining "
        f"instance, {drain.unprobed.count('refused 503')} streams refused 503 by it, "
        f"{drain.unprobed.count('admitted')} admitted by {drain.kept}",
        "   the probe took it out of nginx "
        + (
            f"{drain.taken_out_after:.2f} s after it looked"
            if drain.taken_out_after is not None
            else "never"
        )
        + f"; exit {drain.exit_code}"
        + (f" {drain.exited_after:.1f} s after SIGTERM" if drain.exited_after is not None else ""),
        *([_call_line(drain.held, "   its call goes on: ")] if drain.held else []),
        *(_call_line(call, "   new during the drain: ") for call in drain.new_calls),
    ]
    return "\n".join(lines)


def _call_line(call: CallSeen, prefix: str = "   ") -> str:
    return f"{prefix}{call.sid[:10]}… webhook {call.webhook}, stream {call.stream}: " + " / ".join(
        f'"{text}"' for text in call.heard
    )


def _per_instance(figures: dict, run: LoadBalancerRun) -> str:
    return ", ".join(f"{name} {figures.get(name, 0)}" for name in run.instances)


def _yes(value: bool) -> str:
    return "yes" if value else "NO"


def main() -> int:
    """Run the scenarios and print the report."""
    logger.remove()  # the stand-ins' own debug lines
    logger.add(sys.stderr, level="WARNING")
    print(report(asyncio.run(load_balanced_calls())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
