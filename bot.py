"""The Twilio voice bot.

python bot.py [serve]                 run the bot server (configuration: environment / .env)
python bot.py call --offline [WAV…]   a phone call from the terminal against local stand-ins
python bot.py call [WAV…]             the same call against the real providers (keys in .env)
"""

import argparse
import asyncio
import sys
from pathlib import Path

from loguru import logger

from pipelines.declaration import DeclarationError, load_declarations
from server.settings import ConfigError, load_settings

DEFAULT_CALLER_AUDIO = [Path(__file__).parent / "tests" / "data" / "book_table.wav"]
LOG_FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[call_sid]}</cyan> {message}"
)


def configure_logging(level: str) -> None:
    """Log to stderr; every line of a call carries its call SID."""
    logger.remove()
    logger.configure(extra={"call_sid": "-"})
    logger.add(sys.stderr, level=level, format=LOG_FORMAT)


def serve(args: argparse.Namespace) -> int:
    """Run the server until interrupted."""
    import uvicorn

    from server.app import create_app

    try:
        settings = load_settings()
        app = create_app(settings, load_declarations())
    except (ConfigError, DeclarationError, ValueError) as e:
        print(e, file=sys.stderr)
        return 2
    logger.info(f"serving on port {settings.port}; Twilio webhook: {settings.public_url}/voice")
    uvicorn.run(app, host=args.host, port=settings.port, log_config=None, ws="websockets-sansio")
    return 0


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
    wavs = [Path(p) for p in args.wav] or DEFAULT_CALLER_AUDIO
    return asyncio.run(place_call(args, declarations, wavs))


def main() -> int:
    """Parse the command line and run the chosen command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command")
    serve_parser = commands.add_parser("serve", help="run the bot server")
    serve_parser.add_argument("--host", default="0.0.0.0")
    call_parser = commands.add_parser("call", help="a simulated phone call from the terminal")
    call_parser.add_argument("wav", nargs="*", help="caller audio: 8 kHz mono WAV, one per turn")
    call_parser.add_argument("--offline", action="store_true", help="use local stand-ins")
    call_parser.add_argument("--pipeline", default="default", help="pipeline to call")
    call_parser.add_argument("--out", default="bot_audio.wav", help="where to write bot audio")
    args = parser.parse_args()
    configure_logging(args.log_level if args.command != "call" else "WARNING")
    if args.command == "call":
        return call(args)
    if args.command is None:
        args.host = "0.0.0.0"
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
