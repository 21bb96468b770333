"""Debian's nginx as the load balancer in front of bot instances, for a harness or a test.

Its own config in a temporary directory, with its pid file, logs and temporary files there too;
nginx in the foreground (a child process) on a loopback port, stopped on exit. Without the
binary it fails, saying how to install it (tools/system_packages.sh does): it never skips.

The choices, each for a reason the config cannot show:

- Round-robin over one worker process: consecutive requests go to consecutive instances, so a
  call's webhook and its media stream (two requests in a row) are served by different ones.
- Passive checks for a dead instance only: `proxy_next_upstream error timeout` (a refused
  connection is retried on the next instance, a POST too since nothing was sent) with
  `max_fails=1`. Not `http_503`: a 503 is how a full server refuses a media stream, and nginx
  would count it as the instance failing; a burst at MAX_CALLS would mark every instance
  failed and nginx answer 502 "no live upstreams" until `fail_timeout` passed.
- Nothing in open-source nginx sees a draining instance (its webhook answers 200, busy TwiML):
  `take_out` marks it `down` and reloads, which is what a readiness probe on `/health` does
  (harness.load_balancer runs one). Calls already streaming through it go on: nginx's old
  worker keeps their WebSockets until they close.
"""

import asyncio
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

UPSTREAM = "bot_instances"
FAIL_TIMEOUT_SECS = 10  # a dead instance is left out this long after a refused connection
# One access log line: which instances were tried, in order, and what each answered.
ACCESS_FORMAT = '$msec $request_method $uri $status "$upstream_addr" "$upstream_status"'


def nginx_binary() -> str:
    """The nginx executable, or a failure saying how to install it."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else ""
    )
    if not found:
        raise RuntimeError(
            "nginx is not installed: the load-balancer harness runs Debian's "
            "(apt-get install -y nginx; tools/system_packages.sh installs it)"
        )
    return found


def nginx_config(
    directory: Path, port: int, upstreams: list[str], *, down: frozenset[str] = frozenset()
) -> str:
    """nginx.conf: listen on `port`, balance over `upstreams` (`host:port`), those in `down` out.

    Its pid, logs and temporary files are in `directory`.
    """
    servers = "\n".join(
        f"        server {address} max_fails=1 fail_timeout={FAIL_TIMEOUT_SECS}s"
        + (" down;" if address in down else ";")
        for address in upstreams
    )
    # As root nginx would run its worker as nobody, who cannot enter the temporary directory.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""\
daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log notice;
{user}
events {{
    worker_connections 1024;
}}

http {{
    log_format upstreams '{ACCESS_FORMAT}';
    access_log {directory}/access.log upstreams;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    upstream {UPSTREAM} {{
{servers}
    }}

    server {{
        listen 127.0.0.1:{port};

        location / {{
            proxy_pass http://{UPSTREAM};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            # The client's Host, as the caller addressed it (the console's same-origin check).
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_next_upstream error timeout;
            proxy_connect_timeout 2s;
            # A media stream may carry no bot audio for minutes (the caller talking, on hold).
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }}
    }}
}}
"""


@dataclass(frozen=True)
class AccessLine:
    """One request nginx served: the instances it tried, in order, and what each answered."""

    at: float  # Unix time the request was logged (a WebSocket's: when it closed)
    method: str
    path: str
    status: int
    upstreams: tuple[str, ...]
    upstream_statuses: tuple[str, ...]

    @property
    def retried(self) -> bool:
        """Whether nginx tried more than one instance."""
        return len(self.upstreams) > 1


def parse_access_line(line: str) -> AccessLine:
    """An access log line written in ACCESS_FORMAT."""
    head, addresses, _, statuses, _ = line.rsplit('"', 4)
    at, method, path, status = head.split()
    return AccessLine(
        at=float(at),
        method=method,
        path=path,
        status=int(status),
        upstreams=tuple(a.strip() for a in addresses.split(",") if a.strip() not in ("", "-")),
        upstream_statuses=tuple(s.strip() for s in statuses.split(",") if s.strip() != "-"),
    )


class Nginx:
    """nginx on `port` in front of `upstreams`; `async with` starts it and stops it."""

    def __init__(self, port: int, upstreams: list[str]):
        """Balance over `upstreams` (`host:port`)."""
        self.port = port
        self.upstreams = list(upstreams)
        self.down: frozenset[str] = frozenset()
        self.directory = Path(tempfile.mkdtemp(prefix="bot-nginx-"))
        self.config = self.directory / "nginx.conf"
        self.process: asyncio.subprocess.Process | None = None
        self.reloads = 0

    @property
    def url(self) -> str:
        """Where callers reach the instances: their PUBLIC_URL."""
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> "Nginx":
        """Start nginx; it answers once this returns."""
        self.config.write_text(nginx_config(self.directory, self.port, self.upstreams))
        error_log = str(self.directory / "error.log")
        command = [nginx_binary(), "-p", str(self.directory), "-c", str(self.config)]
        self.process = await asyncio.create_subprocess_exec(
            *command, "-e", error_log, stderr=asyncio.subprocess.DEVNULL
        )
        try:
            await self._wait_listening()
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(self, *_exc) -> None:
        """Stop nginx (fast: open connections are closed) and delete its directory."""
        await self._stop()

    async def take_out(self, upstream: str) -> None:
        """Mark `upstream` down and reload; returns once the old worker stopped taking requests."""
        self.down |= {upstream}
        self.config.write_text(
            nginx_config(self.directory, self.port, self.upstreams, down=self.down)
        )
        before = self._logged("gracefully shutting down")
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)
        async with asyncio.timeout(10):
            while self._logged("gracefully shutting down") <= before:  # noqa: ASYNC110 (its log)
                await asyncio.sleep(0.02)
        self.reloads += 1

    def access_log(self) -> list[AccessLine]:
        """Every request logged so far, in order."""
        path = self.directory / "access.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [parse_access_line(line) for line in lines if line.strip()]

    def error_log(self) -> str:
        """What nginx itself logged (notice level: reloads, upstream failures)."""
        path = self.directory / "error.log"
        return path.read_text() if path.exists() else ""

    def _logged(self, text: str) -> int:
        return self.error_log().count(text)

    async def _wait_listening(self) -> None:
        async with asyncio.timeout(10):
            while True:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise RuntimeError(f"nginx exited: {self.error_log()[-2000:]}")
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                await writer.wait_closed()
                return

    async def _stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()  # nginx's fast shutdown
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)
