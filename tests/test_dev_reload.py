"""`bot.py serve --dev`: a pipeline file saved while the server runs answers the next call."""

import asyncio
import shutil

import pytest

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

    default = pipelines / "default.toml"
    default.write_text(default.read_text().replace(GREETING, EDITED_GREETING))
    await _until(lambda: reloader.reloads == 1, "the reload")
    assert heard_matches(await _greeting(dev_bot.url), EDITED_GREETING)

    good = default.read_text()
    default.write_text(good.replace('end = "smart-turn"', 'end = "whenever"'))
    await _until(lambda: any("not reloaded" in line for line in log_lines), "the error")
    (error,) = [line for line in log_lines if "not reloaded" in line]
    assert "default.toml" in error and "turn.end" in error and "smart-turn" in error
    assert reloader.reloads == 1
    assert heard_matches(await _greeting(dev_bot.url), EDITED_GREETING)
