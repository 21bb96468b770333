"""The bots under test, each run as its own server process, and what their processes cost."""

import asyncio
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil

from server.local import free_port

ROOT = Path(__file__).parent.parent


@dataclass(frozen=True)
class Bot:
    """How to start one bot: its command, and the turn-end silence it is configured with."""

    name: str
    command: tuple[str, ...]
    turn_end_s: float  # configured silence before a turn ends (VAD stop + speech timeout)
    workers: int = 1
    root: Path = ROOT  # the checkout it runs from
    env: tuple[tuple[str, str], ...] = ()  # its own environment variables, e.g. PIPELINES_DIR


def ours(
    workers: int,
    turn_end_s: float,
    *,
    root: Path = ROOT,
    name: str = "ours",
    pipelines: Path | None = None,
) -> Bot:
    """This project's server (`python bot.py serve`), from this checkout or another one.

    `pipelines`: a directory of pipeline files to serve instead of the checkout's.
    """
    command = (sys.executable, "bot.py", "serve")
    env = (("PIPELINES_DIR", str(pipelines)),) if pipelines else ()
    return Bot(name, command, turn_end_s, workers, root, env)


def stock(turn_end_s: float) -> Bot:
    """Pipecat's Twilio example, built with its defaults (bench/stock_bot.py): one process."""
    return Bot("stock Pipecat", (sys.executable, "-m", "bench.stock_bot"), turn_end_s)


@dataclass
class Usage:
    """One reading of a server's processes."""

    cpu_s: float  # user + system CPU seconds so far, all processes
    pss_mb: float  # proportional set size (shared pages counted once), all processes
    fds: int  # open file descriptors, all processes


class BotServer:
    """A running bot server process (and its worker processes)."""

    def __init__(self, bot: Bot, url: str, process: asyncio.subprocess.Process, log: str):
        self.bot, self.url, self.process, self.log = bot, url, process, log

    def processes(self) -> list[psutil.Process]:
        """The server process and its workers."""
        parent = psutil.Process(self.process.pid)
        return [parent, *parent.children(recursive=True)]

    def usage(self) -> Usage:
        """CPU time, memory and file descriptors of every process of the server."""
        cpu = pss = fds = 0
        for process in self.processes():
            with suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                cpu += times.user + times.system
                pss += process.memory_full_info().pss
                fds += process.num_fds()
        return Usage(cpu_s=cpu, pss_mb=pss / 2**20, fds=fds)

    async def health(self) -> dict:
        """`GET /health` (one worker answers)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/health") as response,
        ):
            return await response.json()


@asynccontextmanager
async def running(
    bot: Bot, env: dict[str, str], *, log_level: str = "WARNING", public_url: str | None = None
) -> AsyncIterator[BotServer]:
    """Start `bot` with `env` (the stand-ins' environment) on a free port; stop it on exit.

    `public_url`: where callers reach it, when not directly (a load balancer in front).
    `bot.env` wins over the defaults set here (e.g. its own MAX_CALLS).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env = keep | env
    env |= {"PORT": str(port), "PUBLIC_URL": public_url or url, "WORKERS": str(bot.workers)}
    # No call limit: the capacity run finds the knee itself.
    env |= {"LOG_LEVEL": log_level, "OPENBLAS_NUM_THREADS": "1", "MAX_CALLS": "0"}
    env |= dict(bot.env)
    fd, log = tempfile.mkstemp(prefix=f"bench-{bot.name.split()[0]}-", suffix=".log")
    process = await asyncio.create_subprocess_exec(*bot.command, cwd=bot.root, env=env, stderr=fd)
    os.close(fd)
    server = BotServer(bot, url, process, log)
    try:
        await _wait_healthy(server)
        yield server
    finally:
        with suppress(ProcessLookupError):  # a test may have stopped or killed it already
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _wait_healthy(server: BotServer) -> None:
    async with asyncio.timeout(60):
        while True:
            if server.process.returncode is not None:
                raise RuntimeError(f"{server.bot.name} exited; see {server.log}")
            with suppress(aiohttp.ClientError):
                await server.health()
                return
            await asyncio.sleep(0.2)
