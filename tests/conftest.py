"""Shared fixtures: the stand-ins and the real bot server pointed at them."""

import os
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"

# Tests never read a developer's .env or real credentials.
for _name in list(os.environ):
    if _name.startswith(("DEEPGRAM_", "OPENAI_", "TWILIO_")) or _name in ("PUBLIC_URL", "PORT"):
        del os.environ[_name]


@pytest.fixture
def data() -> Path:
    """The folder of test recordings."""
    return DATA
