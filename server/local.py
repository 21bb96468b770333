"""Serve the bot in this process on a free loopback port (tests, benchmarks, the terminal call)."""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from pipelines.declaration import PIPELINES_DIR, ROUTES_FILE, Declaration
from server.app import create_app
from server.settings import Settings
from server.size_limits import MAX_WEBSOCKET_MESSAGE_BYTES


@dataclass
class LocalBot:
    """A running bot server."""

    url: str
    app: FastAPI
    settings: Settings


def free_socket() -> socket.socket:
    """A listening-ready TCP socket bound to a free loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    """A loopback port nobody listens on now (for a server another process will start)."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    return port


@asynccontextmanager
async def serve_locally(
    env: dict[str, str],
    declarations: dict[str, Declaration],
    routes_file: Path = PIPELINES_DIR / ROUTES_FILE,
    *,
    dev: bool = False,
) -> AsyncIterator[LocalBot]:
    """Run the real server with `env` as its environment (PUBLIC_URL is set to where it listens).

    `routes_file`: the routing table (default: pipelines/routes.toml); `dev`: its directory's
    pipeline files are reloaded on save.
    """
    sock = free_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    overrides = {key.lower(): value for key, value in env.items()} | {"public_url": url}
    settings = Settings(_env_file=None, **overrides)
    app = create_app(settings, declarations, routes_file=routes_file, environ=env, dev=dev)
    async with serving(app, sock):
        yield LocalBot(url=url, app=app, settings=settings)


@asynccontextmanager
async def serving(app: FastAPI, sock: socket.socket) -> AsyncIterator[None]:
    """Serve `app` with uvicorn on `sock` (from `free_socket`) until the block ends."""
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        ws="websockets-sansio",
        ws_max_size=MAX_WEBSOCKET_MESSAGE_BYTES,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="bot-server")
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        await task
        sock.close()
