"""The container's health check: exit 0 if this instance's `/health` answers 200, else 1.

Docker's HEALTHCHECK (and compose) run it inside the container. It reads PORT from the
environment as the server does (with the same default) and asks the loopback interface, which
the server's 0.0.0.0 includes. A 503 ("draining", after SIGTERM) fails it: the instance takes
no new calls. Standard library only: it starts in a few tens of milliseconds.
"""

import os
import sys
import urllib.request

HEALTH_PATH = "/health"
DEFAULT_PORT = 8765  # server/settings.py: Settings.port
TIMEOUT_SECS = 4.0  # under the HEALTHCHECK's --timeout


def main() -> int:
    """Ask `/health` once; 0 if it answers 200."""
    url = f"http://127.0.0.1:{os.environ.get('PORT') or DEFAULT_PORT}{HEALTH_PATH}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECS) as response:
            return 0 if response.status == 200 else 1
    except (OSError, ValueError) as e:  # refused, timed out, an HTTP error (503), a bad PORT
        print(f"{url}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
