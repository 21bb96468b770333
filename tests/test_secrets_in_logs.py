"""No key or token reaches a log line, at any level, from our code or any library's."""

import logging

from loguru import logger

from harness.faults import bot_with, dial
from recordings import RECORDINGS
from server.logs import MASK, ToLoguru, basic_auth, mask_secrets, register_secrets
from standins.stack import ACCOUNT_SID

DATA = RECORDINGS
SECRET_VARIABLES = (
    "DEEPGRAM_API_KEY",
    "OPENAI_API_KEY",
    "CARTESIA_API_KEY",
    "ELEVENLABS_API_KEY",
    "ANTHROPIC_API_KEY",
    "TWILIO_AUTH_TOKEN",
)


class Everything(logging.Handler):
    """Every standard library record, with its traceback, unformatted by anyone else."""

    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.NOTSET)
        self.into = into
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(self.format(record))


def secret_forms(env: dict[str, str]) -> dict[str, str]:
    """Each secret as it could be logged: raw, in an Authorization header, Basic-encoded."""
    forms = {name: env[name] for name in SECRET_VARIABLES}
    forms["Basic SID:token"] = basic_auth(ACCOUNT_SID, env["TWILIO_AUTH_TOKEN"])
    forms["Token <key>"] = f"Token {env['DEEPGRAM_API_KEY']}"
    forms["Bearer <key>"] = f"Bearer {env['OPENAI_API_KEY']}"
    return forms


async def test_a_whole_call_logs_no_secret_at_trace_level():
    lines: list[str] = []
    sink = logger.add(lines.append, level=0, format="{level} {name} {message} {extra}")
    stdlib, root = Everything(lines), logging.getLogger()
    root.addHandler(stdlib)
    root_level, root.level = root.level, logging.DEBUG
    try:
        async with bot_with() as (bot, standins):
            env = standins.env()
            call = await dial(bot)
            await call.listen()
            await call.say(DATA / "book_table.wav")
            await call.listen()
            await call.say(DATA / "goodbye.wav")
            await call.listen()
            await call.wait_closed(timeout=10)
            assert await standins.twilio.wait_for_hangup(call.call_sid, timeout=10)
    finally:
        logger.remove(sink)
        root.removeHandler(stdlib)
        root.level = root_level

    assert len(lines) > 1000, "TRACE and DEBUG records of every library were captured"
    assert any(line.startswith("uvicorn") for line in lines), "uvicorn's records too"
    for form, secret in secret_forms(env).items():
        leaks = [line[:300] for line in lines if secret in line]
        assert not leaks, f"{form} logged: {leaks[:3]}"
    # A secret the patcher masked still reached a log call: that is a leak at its source.
    masked = [line[:300] for line in lines if MASK in line]
    assert not masked, masked[:3]


async def test_the_patcher_masks_a_secret_logged_on_purpose():
    token, sid = "deliberate-token-5f3a9c", "AC" + "7" * 32
    register_secrets(token, basic_auth(sid, token))
    lines: list[str] = []
    sink = logger.add(lines.append, level="INFO", format="{message}")
    library = logging.getLogger("some.library")
    library.addHandler(handler := ToLoguru())  # as configure_logging routes them
    try:
        logger.info(f"token {token}, header Basic {basic_auth(sid, token)}")
        library.warning("sent Authorization: Token %s", token)
    finally:
        logger.remove(sink)
        library.removeHandler(handler)

    assert lines == [
        f"token {MASK}, header Basic {MASK}\n",
        f"some.library: sent Authorization: Token {MASK}\n",
    ]


def test_masking_leaves_other_text_and_short_values_alone():
    register_secrets("abc")  # too short to mask without masking words
    record = {"message": "abc and nothing secret"}
    mask_secrets(record)
    assert record["message"] == "abc and nothing secret"
