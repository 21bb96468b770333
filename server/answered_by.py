"""Who answered an outbound call, as Twilio's asynchronous machine detection reports it.

Twilio posts the verdict (`AnsweredBy`) to `/twilio/amd` while the call's media stream is
already running, and with several worker processes the post may reach another process than
the call's. So verdicts are dropped as files in a directory every worker shares (like the
stream-token claims), and the call waits for its own.
"""

import asyncio
import hashlib
import os
import re
import time
from pathlib import Path
from typing import Literal

POLL_SECS = 0.05
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


class AnsweredByBox:
    """Verdicts by call SID, shared by every process that shares `directory`."""

    def __init__(self, directory: Path):
        """Keep verdicts in `directory` (created if missing)."""
        self._directory = Path(directory)
        self._directory.mkdir(parents=True, exist_ok=True)

    def post(self, call_sid: str, answered_by: str) -> None:
        """Leave the verdict for `call_sid` (a malformed one is kept as `unknown`)."""
        self._prune()
        verdict = answered_by if _VERDICT.match(answered_by) else "unknown"
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
