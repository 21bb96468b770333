"""Shared fixtures: the stand-ins and the real bot server pointed at them."""

import os
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
    ):
        del os.environ[_name]


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
async def bot(standins):
    """The real bot server, in this process, pointed at the stand-ins."""
    from pipelines.declaration import load_declarations
    from server.local import serve_locally

    async with serve_locally(standins.env(), load_declarations()) as running:
        yield running


@pytest.fixture
def log_lines() -> list[str]:
    """Messages logged at WARNING or above while the test runs."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="WARNING")
    yield lines
    logger.remove(sink)
