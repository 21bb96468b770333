"""`bot.py serve --dev`: a pipeline file saved while the server runs answers the next call."""

import asyncio
import shutil
import sys

import psutil
import pytest
from test_run_command import BOT, _health, served_env

from calls import heard_matches
from pipelines.declaration import PIPELINES_DIR, ROUTES_FILE, load_declarations
from standins.script import GREETING, dial

EDITED_GREETING = "Welcome to Luigi's. What can I do for you?"


@pytest.fixture
def pipelines(tmp_path):
    """A copy of the shipped pipeline files to edit."""
    for path in PIPELINES_DIR.glob("*.toml"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


@pytest.fixture
async def dev_bot(standins, pipelines):
    """The real server in dev mode, serving the copy."""
    from server.local import serve_locally

    declarations = load_declarations(pipelines)
    async with serve_locally(
        standins.env(), declarations, pipelines / ROUTES_FILE, dev=True
    ) as running:
        yield running


def _edit_greeting(pipelines) -> None:
    default = pipelines / "default.toml"
    default.write_text(default.read_text().replace(GREETING, EDITED_GREETING))


async def _greeting(url: str) -> bytes:
    call = await dial(url)
    greeting = await call.listen()
    await call.hang_up()
    return greeting.ulaw


async def _until(condition, what: str) -> None:
    try:
        async with asyncio.timeout(10):  # a bound on a hang, not a measurement
            while not condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"never saw {what}") from None


async def test_a_saved_edit_answers_the_next_call_and_a_broken_file_keeps_the_last_good_one(
    dev_bot, pipelines, log_lines
):
    reloader = dev_bot.app.state.reloader
    assert heard_matches(await _greeting(dev_bot.url), GREETING)

    _edit_greeting(pipelines)
    await _until(lambda: reloader.reloads == 1, "the reload")
    assert heard_matches(await _greeting(dev_bot.url), EDITED_GREETING)

    default = pipelines / "default.toml"
    default.write_text(default.read_text().replace('end = "smart-turn"', 'end = "whenever"'))
    await _until(lambda: any("not reloaded" in line for line in log_lines), "the error")
    (error,) = [line for line in log_lines if "not reloaded" in line]
    assert "default.toml" in error and "turn.end" in error and "smart-turn" in error
    assert reloader.reloads == 1
    assert heard_matches(await _greeting(dev_bot.url), EDITED_GREETING)


async def test_bot_py_serve_dev_runs_one_process_and_reloads_a_saved_file(standins, pipelines):
    url, env = served_env(standins, PIPELINES_DIR=str(pipelines))
    server = await asyncio.create_subprocess_exec(
        sys.executable, str(BOT), "serve", "--dev", env=env, stderr=asyncio.subprocess.PIPE
    )
    logged: list[str] = []

    async def read_log() -> None:
        assert server.stderr is not None
        async for line in server.stderr:
            logged.append(line.decode())

    reading = asyncio.create_task(read_log())
    try:
        await _health(url)
        children = psutil.Process(server.pid).children()
        assert not [c for c in children if "python" in c.name()], "no worker processes"
        # A server that owns its process keeps what it started with out of the GC's scans.
        await _until(lambda: any("frozen out of the GC" in line for line in logged), "the freeze")
        _edit_greeting(pipelines)
        await _until(lambda: any("pipeline files reloaded" in line for line in logged), "it")
        assert heard_matches(await _greeting(url), EDITED_GREETING)
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 10)
        await reading
