"""Shared fixtures: the stand-ins and the real bot server pointed at them."""

import os
import tempfile
from pathlib import Path

import pytest
from loguru import logger

from recordings import RECORDINGS

DATA = RECORDINGS

# Tests never read a developer's .env or real credentials.
for _name in list(os.environ):
    if _name.startswith(
        ("DEEPGRAM_", "OPENAI_", "TWILIO_", "CARTESIA_", "ELEVENLABS_", "ANTHROPIC_")
    ) or _name in (
        "PUBLIC_URL",
        "PORT",
        "PIPELINE",
        "API_TOKEN",
        "DATABASE_URL",
    ):
        del os.environ[_name]
# Every server a test starts keeps its call records in this process's own SQLite file.
os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="bot-test-data-")


# A module that places calls through the real server, or runs the bench or a fault scenario,
# or drives a browser, runs in real time (seconds a test); the rest are unit tests (milliseconds).
_CALLS = ("dial(", "dial_into_", "serve_locally", "harness.faults", "bench", "bot.py", "run_call")
_CALLS += ("Browser.open",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests of modules that place real-time calls: `call` (`make test-unit` skips)."""
    sources: dict[Path, bool] = {}
    for item in items:
        path = Path(item.path)
        if path not in sources:
            sources[path] = any(needle in path.read_text() for needle in _CALLS)
        if sources[path]:
            item.add_marker(pytest.mark.call)


@pytest.fixture
def data() -> Path:
    """The folder of test recordings."""
    return DATA


@pytest.fixture
async def standins():
    """Every stand-in with default knobs."""
    from standins.stack import running_standins

    async with running_standins() as running:
        yield running


@pytest.fixture
def declarations() -> dict:
    """The pipelines the `bot` fixture serves: the shipped ones (a module may override it)."""
    from pipelines.declaration import load_declarations

    return load_declarations()


@pytest.fixture
async def bot(standins, declarations):
    """The real bot server, in this process, pointed at the stand-ins."""
    from server.local import serve_locally

    async with serve_locally(standins.env(), declarations) as running:
        yield running


def _logged(level: str):
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level=level)
    yield lines
    logger.remove(sink)


@pytest.fixture
def log_lines() -> list[str]:
    """Messages logged at WARNING or above while the test runs."""
    yield from _logged("WARNING")


@pytest.fixture
def debug_lines() -> list[str]:
    """Messages logged at DEBUG or above while the test runs."""
    yield from _logged("DEBUG")


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server of this test process's own (Debian's binaries, never a mock)."""
    from harness.postgres import ThrowawayPostgres

    server = ThrowawayPostgres().start()
    yield server
    server.remove()


@pytest.fixture
def migrated():
    """`await migrated(url)`: the schema made in the database at `url`; its async URL."""
    from records.database import create_engine, database_url, migrate

    async def make(url: str) -> str:
        url = database_url(url, Path("."))
        engine = create_engine(url)
        await migrate(engine)
        await engine.dispose()
        return url

    return make


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """DATABASE_URL of an empty database: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'calls.db'}"
    return request.getfixturevalue("postgres").new_database()
