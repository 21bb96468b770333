"""Where call records live: SQLite under DATA_DIR, or PostgreSQL at DATABASE_URL."""

import asyncio
import fcntl
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from loguru import logger
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_FILE = "calls.db"
_MIGRATION_LOCK = 7_341_402  # PostgreSQL advisory lock: one instance migrates at a time
_WRITE_TIMEOUT_SECS = 5  # SQLite: how long a write waits for another process's lock


class DatabaseURLError(ValueError):
    """DATABASE_URL names no database this server can use."""


def database_url(database_url: str | None, data_dir: Path) -> str:
    """The SQLAlchemy async URL: `postgresql://…` (asyncpg), else SQLite in `data_dir`."""
    if not database_url:
        return f"sqlite+aiosqlite:///{(data_dir / SQLITE_FILE).resolve()}"
    try:
        url = make_url(database_url)
    except Exception as e:  # SQLAlchemy's own ArgumentError: say which variable it is
        raise DatabaseURLError(f"not a URL: {e}") from None
    if url.get_backend_name() == "postgresql":
        return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    if url.get_backend_name() == "sqlite":
        return url.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    raise DatabaseURLError(f"must be postgresql://… or sqlite:///…, not {url.drivername}://…")


def create_engine(url: str) -> AsyncEngine:
    """An async engine for `url`; SQLite files get their directory, WAL and a busy timeout."""
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": _WRITE_TIMEOUT_SECS})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the latest migration (every process may try: one at a time)."""
    if engine.dialect.name == "sqlite":
        path = Path(engine.url.database or "").with_suffix(".migrate.lock")
        lock = await asyncio.to_thread(_lock, path)  # processes starting together take turns
        try:
            await _upgrade(engine)
        finally:
            os.close(lock)
    else:
        await _upgrade(engine)
    logger.info(f"call records: {where(engine.url)}, schema up to date")


async def _upgrade(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
        await connection.run_sync(_run_migrations)


def _lock(path: Path) -> int:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    return descriptor


def _run_migrations(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def where(url: URL | str) -> str:
    """The database at `url` for a log line, without its password: `PostgreSQL host:port/db`."""
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        return f"SQLite {url.database}"
    return f"PostgreSQL {url.host}:{url.port or 5432}/{url.database}"
