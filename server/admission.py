"""How many calls the whole server admits at once, counted across its worker processes.

Each admitted call holds an exclusive `flock` on one slot file in a directory every worker
shares: the kernel releases it when the call ends, or when its process dies however it dies,
so a crashed worker's calls never stay counted. A guard lock serializes admitting and counting
(a few microseconds of system calls, made on the event loop).

That is for one machine. With DATABASE_URL at PostgreSQL, instances on many machines count
their calls together by leases in the database instead (`server.leases.LeasedAdmission`), with
the same interface: `CallAdmission`.
"""

import fcntl
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from loguru import logger

# Names the shared directory in the environment of uvicorn's worker processes.
ADMISSION_DIR_VARIABLE = "BOT_ADMISSION_DIR"


class AdmittedCall(Protocol):
    """One admitted call's place."""

    async def release(self) -> None:
        """Free the place; releasing twice is harmless."""


class CallAdmission(Protocol):
    """Counts the calls of every process (and instance) of the server, with a limit.

    `admit` and `count` may raise `server.shared_database.DatabaseUnavailable`.
    """

    capacity: int | None

    def start(self) -> None:
        """Begin any background work (on the running event loop)."""

    async def admit(self) -> AdmittedCall | None:
        """A place for one more call, or None when `capacity` calls are already admitted."""

    async def count(self) -> int:
        """Calls admitted now, over every process and instance."""

    async def count_here(self) -> int:
        """Calls admitted now by the processes of this server instance (on this machine)."""

    async def has_room(self) -> bool:
        """Whether one more call would be admitted now."""

    async def close(self) -> None:
        """Let go of what it holds."""


class Slot:
    """One admitted call's place; `release()` (or the process ending) frees it."""

    def __init__(self, fd: int, index: int):
        """Hold the locked slot file `fd`, slot number `index`."""
        self._fd = fd
        self.index = index

    async def release(self) -> None:
        """Free the slot; releasing twice is harmless."""
        if self._fd >= 0:
            os.close(self._fd)  # closing the file drops its flock
            self._fd = -1


class Admission:
    """A cross-process count of admitted calls, with a limit.

    `capacity`: calls admitted at once, over every process sharing `directory`; None: no limit
    (the count is still kept). Without a `directory`, a private one is made on first use (one
    process only) and removed by `close()`.
    """

    def __init__(self, directory: Path | None, capacity: int | None):
        """Count calls in `directory` (created if missing), admitting at most `capacity`."""
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be at least 1 or None (got {capacity})")
        self.capacity = capacity
        self._directory = Path(directory) if directory else None
        self._private = directory is None
        if self._directory is not None:
            self._directory.mkdir(parents=True, exist_ok=True)

    @property
    def directory(self) -> Path:
        """Where the slot files are."""
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="bot-calls-"))
        return self._directory

    def start(self) -> None:
        """Nothing runs in the background: the kernel frees a dead process's slots."""

    async def close(self) -> None:
        """Remove a private directory (a shared one belongs to whoever made it)."""
        if self._private and self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    async def admit(self) -> Slot | None:
        """A slot for one more call, or None when `capacity` calls are already admitted."""
        with self._guard():
            index = 0
            while self.capacity is None or index < self.capacity:
                fd = self._try_lock(index)
                if fd is not None:
                    return Slot(fd, index)
                index += 1
        return None

    async def count(self) -> int:
        """Calls admitted now, in every process."""
        return self._count()

    async def count_here(self) -> int:
        """Calls admitted now, in every process: those of this machine's server."""
        return self._count()

    def _count(self) -> int:
        with self._guard():
            held = 0
            for path in self.directory.glob("slot-*"):
                fd = self._try_lock(int(path.name.removeprefix("slot-")))
                if fd is None:
                    held += 1
                else:
                    os.close(fd)
            return held

    async def has_room(self) -> bool:
        """Whether one more call would be admitted now."""
        return self.capacity is None or self._count() < self.capacity

    def _try_lock(self, index: int) -> int | None:
        fd = os.open(self.directory / f"slot-{index}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError:
            os.close(fd)
            logger.exception(f"cannot lock call slot {index} in {self.directory}")
            raise
        return fd

    @contextmanager
    def _guard(self):
        fd = os.open(self.directory / "guard", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


class RefusalLog:
    """Logs refused calls at WARNING: the first at once, then at most one line per `interval`.

    A flood of refused attempts logs a line a second, each saying how many it stands for.
    """

    def __init__(self, interval: float = 1.0):
        """Log at most one line per `interval` seconds."""
        self.interval = interval
        self._last = float("-inf")
        self._unlogged = 0

    def refused(self, what: str, why: str) -> None:
        """Record one refusal of `what` (e.g. "POST /voice: busy TwiML") because of `why`."""
        self._unlogged += 1
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        more = f" (and {self._unlogged - 1} more since the last line)" if self._unlogged > 1 else ""
        logger.warning(f"refused a call, {what}: {why}{more}")
        self._last, self._unlogged = now, 0
