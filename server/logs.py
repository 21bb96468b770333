"""One log format for the server and its worker processes: every line of a call has its SID.

Secrets never reach a sink: the app registers its keys and tokens (`register_secrets`), and a
patcher masks them in every record's message, including standard library records
(uvicorn, websockets, aiohttp, httpx), which `configure_logging` routes through loguru.
"""

import base64
import logging
import sys

from loguru import logger

LOG_FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[call_sid]}</cyan> {message}"
)
MASK = "[secret]"
# Environment variables whose values are credentials, by the end of their name.
SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD")
_MIN_SECRET_CHARS = 6  # shorter values would mask ordinary words
# Libraries that log request headers (Authorization: Token …) at DEBUG: kept at INFO.
HEADER_LOGGERS = ("websockets.client",)

_secrets: set[str] = set()


def configure_logging(level: str) -> None:
    """Log to stderr at `level`, standard library records included, secrets masked."""
    logger.remove()
    logger.configure(extra={"call_sid": "-"}, patcher=mask_secrets)
    logger.add(sys.stderr, level=level, format=LOG_FORMAT)
    logging.basicConfig(handlers=[ToLoguru()], level=logging.INFO, force=True)


def register_secrets(*values: str) -> None:
    """Mask these values in every log record from now on (the patcher is installed here too).

    Standard library records reach loguru's patcher only once `configure_logging` routes
    them; the loggers that would print credentials in headers are raised to INFO here.
    """
    _secrets.update(v for v in values if v and len(v) >= _MIN_SECRET_CHARS)
    logger.configure(patcher=mask_secrets)
    for name in HEADER_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)


def register_environment_secrets(variables: dict[str, str]) -> None:
    """Register the values of credential variables (`*_KEY`, `*_TOKEN`, …) among `variables`."""
    register_secrets(*(v for k, v in variables.items() if k.upper().endswith(SECRET_SUFFIXES)))


def basic_auth(user: str, password: str) -> str:
    """The credential of an HTTP Basic `Authorization` header, as it would be logged."""
    return base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def mask_secrets(record: dict) -> None:
    """Loguru patcher: replace every registered secret in the message with MASK."""
    record["message"] = masked(record["message"])


def masked(text: str) -> str:
    """`text` with every registered secret replaced by MASK."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class ToLoguru(logging.Handler):
    """Hands standard library records to loguru, at their level, from their caller."""

    def emit(self, record: logging.LogRecord) -> None:
        """Log `record` through loguru (so it is masked and formatted like ours)."""
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = logging.currentframe(), 2
        while frame and frame.f_code.co_filename == logging.__file__:
            frame, depth = frame.f_back, depth + 1
        logger.opt(depth=depth, exception=record.exc_info).log(
            level, f"{record.name}: {record.getMessage()}"
        )
