"""The Twilio voice bot.

python bot.py [serve]                 run the bot server (configuration: environment / .env)
python bot.py serve --dev             the same, one process, pipeline files reloaded on save
python bot.py call --offline [WAV…]   a phone call from the terminal against local stand-ins
                                      (a turn may press keys instead: keys:4217#)
python bot.py call [WAV…]             the same call against the real providers (keys in .env)
python bot.py providers               the providers a pipeline file may name, with their options
python bot.py dial +1… [--var k=v]    place a call through the server's API (API_TOKEN)
python bot.py dial --csv numbers.csv --concurrency N   a campaign, with a summary
"""

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

# Before numpy loads: its BLAS would spin a second thread per Smart Turn inference (TURNS.md).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from dotenv import dotenv_values
from loguru import logger

from pipelines.declaration import DeclarationError, load_declarations
from recordings import RECORDINGS
from server.logs import configure_logging
from server.settings import ConfigError, load_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from server.settings import Settings

DATA = RECORDINGS
# What the simulated caller says when no WAV is given, by the pipeline's language.
DEFAULT_CALLER_AUDIO = {"en": [DATA / "book_table.wav"], "es": [DATA / "es" / "reservar_mesa.wav"]}


def serve(args: argparse.Namespace) -> int:
    """Run the server until SIGTERM drains it: one process, or WORKERS processes on one port."""
    import tempfile

    from server.app import create_app
    from server.served_pipelines import unserved_lines

    # The worker processes count their calls together in this directory (server.admission).
    with tempfile.TemporaryDirectory(prefix="bot-calls-") as calls_dir:
        try:
            declarations = load_declarations()
            settings = load_settings()
            app = create_app(
                settings,
                declarations,
                admission_dir=Path(calls_dir),
                owns_process=True,
                dev=args.dev,
            )
        except ConfigError as e:
            environ = {**dotenv_values(".env"), **os.environ}
            print("\n".join([str(e), *unserved_lines(declarations, environ)]), file=sys.stderr)
            return 2
        except (DeclarationError, ValueError) as e:
            print(e, file=sys.stderr)
            return 2
        _run(app, settings, args, calls_dir)
    logger.info("server stopped")
    return 0


def _run(app: "FastAPI", settings: "Settings", args: argparse.Namespace, calls_dir: str) -> None:
    """Serve `app` (one process) or WORKERS processes that count calls in `calls_dir`."""
    import uvicorn

    from records.metrics import MULTIPROCESS_DIR_VARIABLE
    from server.admission import ADMISSION_DIR_VARIABLE
    from server.size_limits import MAX_WEBSOCKET_MESSAGE_BYTES

    workers = 1 if args.dev else settings.worker_count  # one process watches the files
    limit = settings.call_limit
    logger.info(
        f"serving on port {settings.port} with {workers} worker process(es), "
        f"{limit or 'unlimited'} concurrent calls; Twilio webhook: {settings.public_url}/voice"
    )
    if settings.max_calls is None and settings.shared_database:
        logger.warning(
            f"MAX_CALLS is unset: its default ({limit}, this instance's processes) counts the "
            "calls of every instance sharing DATABASE_URL; set it to their total"
        )
    options = {"host": args.host, "port": settings.port, "log_config": None}
    options |= {"ws": "websockets-sansio", "ws_max_size": MAX_WEBSOCKET_MESSAGE_BYTES}
    # Calls have ended by the time uvicorn shuts down: the drain (server.drain) waits for them.
    options |= {"timeout_graceful_shutdown": 5}
    # A worker answers uvicorn's first ping only once it has imported the bot (~5 s on a busy
    # machine): uvicorn's 5 s default had workers killed and restarted for minutes.
    options |= {"timeout_worker_healthcheck": 30}
    if workers == 1:
        uvicorn.run(app, **options)
    else:  # each worker builds its own app from the same environment
        os.environ["LOG_LEVEL"] = args.log_level
        os.environ[ADMISSION_DIR_VARIABLE] = calls_dir
        metrics_dir = Path(calls_dir) / "metrics"  # each worker's figures, for /metrics to add
        metrics_dir.mkdir()
        os.environ[MULTIPROCESS_DIR_VARIABLE] = str(metrics_dir)
        uvicorn.run("server.app:app_from_environment", factory=True, workers=workers, **options)


def call(args: argparse.Namespace) -> int:
    """Place one simulated phone call and print what was said and how fast."""
    from harness.terminal_call import place_call

    try:
        declarations = load_declarations()
    except DeclarationError as e:
        print(e, file=sys.stderr)
        return 2
    if args.pipeline not in declarations:
        print(f"unknown pipeline {args.pipeline!r}; choose from {sorted(declarations)}")
        return 2
    language = declarations[args.pipeline].bot.language.split("-")[0]
    turns = args.wav or DEFAULT_CALLER_AUDIO.get(language, [])
    if not turns:
        print(f"no recording in {language!r} ships with the bot: give WAV files to say")
        return 2
    return asyncio.run(place_call(args, declarations, turns))


def main() -> int:
    """Parse the command line and run the chosen command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    level = os.environ.get("LOG_LEVEL") or dotenv_values(".env").get("LOG_LEVEL") or "INFO"
    parser.add_argument("--log-level", default=level, help="default: LOG_LEVEL, or INFO")
    commands = parser.add_subparsers(dest="command")
    serve_parser = commands.add_parser("serve", help="run the bot server")
    serve_parser.add_argument("--host", default="0.0.0.0")
    serve_parser.add_argument(
        "--dev", action="store_true", help="one process; pipeline files reloaded on save"
    )
    call_parser = commands.add_parser("call", help="a simulated phone call from the terminal")
    call_parser.add_argument(
        "wav", nargs="*", help="caller turns: 8 kHz mono WAV files, or keys to press: keys:4217#"
    )
    call_parser.add_argument("--offline", action="store_true", help="use local stand-ins")
    call_parser.add_argument("--pipeline", default="default", help="pipeline to call")
    call_parser.add_argument("--out", default="bot_audio.wav", help="where to write bot audio")
    commands.add_parser("providers", help="list the providers pipeline files may name")
    from dialer.cli import add_arguments, dial

    add_arguments(commands.add_parser("dial", help="place calls through the server's API"))
    args = parser.parse_args()
    if args.command == "dial":
        configure_logging(args.log_level)
        return dial(args)
    if args.command == "providers":
        from pipelines.catalogue import describe_providers

        print(describe_providers(), end="")
        return 0
    configure_logging(args.log_level if args.command != "call" else "WARNING")
    if args.command == "call":
        return call(args)
    if args.command is None:
        args.host, args.dev = "0.0.0.0", False
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
