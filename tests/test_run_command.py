"""`python bot.py` as a user runs it: a separate process configured by its environment."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import psutil

from server.local import free_port
from standins.script import dial

BOT = Path(__file__).parent.parent / "bot.py"


def clean_env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    return keep | extra


def served_env(standins, **extra: str) -> tuple[str, dict[str, str]]:
    """The URL a `bot.py` process will serve on, and its environment: two worker processes."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    return url, clean_env(PORT=str(port), PUBLIC_URL=url, WORKERS="2", **standins.env(), **extra)


async def test_the_run_command_serves_health_and_answers_a_call(standins, tmp_path):
    url, env = served_env(standins)
    server = await asyncio.create_subprocess_exec(
        sys.executable, str(BOT), cwd=tmp_path, env=env, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        health = await _health(url)
        assert health["status"] == "ok" and health["calls"] == 0
        workers = psutil.Process(server.pid).children()
        assert health["pid"] in [w.pid for w in workers]
        assert len([w for w in workers if "python" in w.name()]) >= 2, "two worker processes"
        call = await dial(url)
        greeting = await call.listen()
        assert greeting.duration > 1.0
        await call.hang_up()
        assert standins.stt.connections, "the subprocess used the stand-ins from its environment"
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 10)


def test_missing_configuration_stops_start_up_naming_each_variable(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BOT)],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    for name in ("PUBLIC_URL", "DEEPGRAM_API_KEY", "OPENAI_API_KEY", "TWILIO_AUTH_TOKEN"):
        assert f"{name} is not set" in result.stderr


async def _health(url: str) -> dict:
    async with aiohttp.ClientSession() as session:
        for _ in range(600):  # a minute: models, migrations and workers start first
            try:
                async with session.get(url + "/health") as response:
                    if response.status == 200:
                        return await response.json()
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url}/health never answered")
