"""One log format for the server and its worker processes: every line of a call has its SID."""

import sys

from loguru import logger

LOG_FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[call_sid]}</cyan> {message}"
)


def configure_logging(level: str) -> None:
    """Log to stderr at `level`."""
    logger.remove()
    logger.configure(extra={"call_sid": "-"})
    logger.add(sys.stderr, level=level, format=LOG_FORMAT)
