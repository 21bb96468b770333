"""Who answered an outbound call, as Twilio's asynchronous machine detection reports it.

Twilio posts the verdict (`AnsweredBy`) to `/twilio/amd` while the call's media stream is
already running, and with several worker processes the post may reach another process than
the call's. So verdicts are dropped as files in a directory every worker shares (like the
stream-token claims), and the call waits for its own. With instances on several machines the
post may reach another machine: the verdicts are rows of a PostgreSQL table then
(`AnsweredByTable`).
"""

import asyncio
import hashlib
import os
import re
import time
from pathlib import Path
from typing import Literal, Protocol

from sqlalchemy import text

from server.shared_database import DatabaseUnavailable, SharedDatabase

POLL_SECS = 0.05
TABLE_POLL_SECS = 0.2  # a query each: a call screens for a few seconds at most
STALE_SECS = 600.0  # a verdict nobody collected (its stream never started) is dropped then
# With `DetectMessageEnd`, a machine's verdict comes once its greeting has ended.
MACHINE = ("machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other")
_VERDICT = re.compile(r"^[a-z_]{1,32}$")

Answerer = Literal["person", "machine", "fax"]


def answerer(answered_by: str | None) -> Answerer:
    """Who `AnsweredBy` says it was; `unknown`, `human` or no verdict at all: a person."""
    if answered_by in MACHINE:
        return "machine"
    return "fax" if answered_by == "fax" else "person"


class Verdicts(Protocol):
    """Where verdicts wait for their calls."""

    async def post(self, call_sid: str, answered_by: str) -> None:
        """Leave the verdict for `call_sid` (a malformed one is kept as `unknown`)."""

    async def wait(self, call_sid: str, timeout: float) -> str | None:  # noqa: ASYNC109
        """The verdict for `call_sid` once it is posted (and collect it); None after `timeout`."""


class AnsweredByBox:
    """Verdicts by call SID, shared by every process that shares `directory`."""

    def __init__(self, directory: Path):
        """Keep verdicts in `directory` (created if missing)."""
        self._directory = Path(directory)
        self._directory.mkdir(parents=True, exist_ok=True)

    async def post(self, call_sid: str, answered_by: str) -> None:
        """Leave the verdict for `call_sid` (a malformed one is kept as `unknown`)."""
        self._prune()
        verdict = _checked(answered_by)
        path = self._path(call_sid)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(verdict)
        partial.replace(path)  # atomic: a reader never sees half a verdict

    async def wait(self, call_sid: str, timeout: float) -> str | None:  # noqa: ASYNC109
        """The verdict for `call_sid` once it is posted (and collect it); None after `timeout`."""
        path = self._path(call_sid)
        deadline = time.monotonic() + timeout
        while True:
            try:
                verdict = path.read_text()
            except FileNotFoundError:
                if time.monotonic() >= deadline:
                    return None
                await asyncio.sleep(POLL_SECS)
                continue
            path.unlink(missing_ok=True)
            return verdict

    def _path(self, call_sid: str) -> Path:
        return self._directory / hashlib.sha256(call_sid.encode()).hexdigest()[:32]

    def _prune(self) -> None:
        cutoff = time.time() - STALE_SECS
        for path in self._directory.iterdir():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
            except FileNotFoundError:
                pass


class AnsweredByTable:
    """Verdicts by call SID in PostgreSQL, shared by every instance that shares `database`.

    `post` raises `DatabaseUnavailable` if the database is down (the report is answered 503);
    `wait` polls through an outage until its timeout.
    """

    def __init__(self, database: SharedDatabase):
        """Keep verdicts in `database`'s `answered_by`."""
        self._database = database

    async def post(self, call_sid: str, answered_by: str) -> None:
        """Leave the verdict for `call_sid` (a malformed one is kept as `unknown`)."""
        async with self._database.transaction("storing who answered") as connection:
            await connection.execute(
                text("DELETE FROM answered_by WHERE posted_at < now() - make_interval(secs => :s)"),
                {"s": STALE_SECS},
            )
            await connection.execute(
                text(
                    "INSERT INTO answered_by (call_sid, verdict, posted_at) "
                    "VALUES (:call_sid, :verdict, now()) ON CONFLICT (call_sid) "
                    "DO UPDATE SET verdict = EXCLUDED.verdict, posted_at = EXCLUDED.posted_at"
                ),
                {"call_sid": call_sid, "verdict": _checked(answered_by)},
            )

    async def wait(self, call_sid: str, timeout: float) -> str | None:  # noqa: ASYNC109
        """The verdict for `call_sid` once it is posted (and collect it); None after `timeout`."""
        deadline = time.monotonic() + timeout
        collect = text("DELETE FROM answered_by WHERE call_sid = :call_sid RETURNING verdict")
        while True:
            try:
                async with self._database.transaction("collecting who answered") as connection:
                    verdict = await connection.scalar(collect, {"call_sid": call_sid})
            except DatabaseUnavailable:
                verdict = None  # logged once for the outage; asked again until the timeout
            if verdict is not None:
                return verdict
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(TABLE_POLL_SECS)


def _checked(answered_by: str) -> str:
    return answered_by if _VERDICT.match(answered_by) else "unknown"
