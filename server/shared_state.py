"""What the server's processes share: in files on one machine, or in PostgreSQL across many.

Three things must hold for the whole server, not one process: how many calls it admits
(`MAX_CALLS`), which stream tokens were used, and who answered each outbound call. Without
PostgreSQL (SQLite, or no DATABASE_URL) they live in a directory the worker processes of one
`bot.py serve` share: nothing to set up, one machine. With DATABASE_URL at PostgreSQL they live
in its tables, so instances on any number of machines behave as one server.
"""

import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from server.admission import Admission, CallAdmission
from server.answered_by import AnsweredByBox, AnsweredByTable, Verdicts
from server.leases import LeasedAdmission
from server.shared_database import SharedDatabase
from server.stream_tokens import ClaimedSids, ClaimedStreams


@dataclass
class SharedState:
    """The admission count, the stream-token claims and the verdicts of one server."""

    admission: CallAdmission
    claims: Callable[[str, float], Awaitable[bool]]
    answers: Verdicts
    database: SharedDatabase | None = None

    def start(self) -> None:
        """Start the background work (lease renewals), on the running event loop."""
        self.admission.start()

    async def close(self) -> None:
        """Let go of the leases, files and connections."""
        await self.admission.close()
        if self.database:
            await self.database.close()


def shared_state(url: str, directory: Path | None, capacity: int | None) -> SharedState:
    """The shared state for the database at `url` (an async SQLAlchemy URL).

    `directory`: where this server's worker processes meet (None: a private one, one process);
    with PostgreSQL it names this instance among the others, with the host.
    """
    if url.startswith("postgresql"):
        database = SharedDatabase(url)
        here = str(directory) if directory else f"pid {os.getpid()} {uuid.uuid4().hex[:8]}"
        admission = LeasedAdmission(database, capacity, instance=f"{socket.gethostname()}:{here}")
        return SharedState(admission, ClaimedStreams(database), AnsweredByTable(database), database)
    files = Admission(directory, capacity)
    claims = ClaimedSids(files.directory / "stream-claims")
    return SharedState(files, claims, AnsweredByBox(files.directory / "answered-by"))
