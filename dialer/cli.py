"""`python bot.py dial`: one number, or a CSV campaign, through the bot's operator API."""

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
from dotenv import dotenv_values

from dialer.api import APIError, BotAPI
from dialer.campaign import Campaign, Retries, summary, write_results
from dialer.numbers import NumbersError, Target, parse_variables, read_numbers
from pipelines.declaration import Declaration, DeclarationError, Outbound, load_declarations


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `dial` command's arguments."""
    parser.add_argument("to", nargs="?", help="the number to call (E.164), unless --csv")
    parser.add_argument("--csv", type=Path, help="numbers to call: a 'to' column, variables")
    parser.add_argument("--pipeline", help="the pipeline (default: the server's PIPELINE)")
    parser.add_argument("--var", action="append", default=[], help="a variable: name=value")
    parser.add_argument("--concurrency", type=int, default=1, help="calls at once (default 1)")
    parser.add_argument("--server", help="the bot server's URL (default: PUBLIC_URL)")
    parser.add_argument(
        "--out", type=Path, help="every outcome as CSV (default: <csv>.results.csv)"
    )


def dial(args: argparse.Namespace) -> int:
    """Place the calls, print each outcome and a summary.

    Exit 2 on a usage or configuration error, 1 if the server could not be asked at all.
    """
    environ = {**dotenv_values(".env"), **os.environ}
    server, token = args.server or environ.get("PUBLIC_URL"), environ.get("API_TOKEN")
    problems = [] if token else ["API_TOKEN is not set (the server's operator API token)"]
    if not server:
        problems.append("no server: give --server or set PUBLIC_URL")
    if (args.csv is None) == (args.to is None):
        problems.append("give one number to call, or --csv with many")
    if args.concurrency < 1:
        problems.append(f"--concurrency must be at least 1 (got {args.concurrency})")
    try:
        targets = _targets(args)
        declarations = load_declarations()
    except (NumbersError, DeclarationError) as e:
        problems.append(str(e))
    if problems or not (server and token):
        print("\n".join(problems), file=sys.stderr)
        return 2
    retries = _declared_retries(declarations, environ.get("PIPELINE") or "default")
    campaign = Campaign(
        BotAPI(server, token), concurrency=args.concurrency, retries=retries, say=_say
    )
    try:
        attempts = asyncio.run(campaign.run(targets))
    except (APIError, aiohttp.ClientError, OSError) as e:
        print(f"could not ask the bot server at {server}: {e}", file=sys.stderr)
        return 1
    print(summary(attempts), flush=True)
    if args.csv or args.out:
        out = args.out or args.csv.with_suffix(".results.csv")
        write_results(out, attempts)
        print(f"every call's outcome: {out}")
    return 0


def _declared_retries(
    declarations: dict[str, Declaration], default: str
) -> Callable[[str | None], Retries]:
    """A target's retries: its pipeline's `[outbound]` (the default's if it names none)."""

    def retries(pipeline: str | None) -> Retries:
        declaration = declarations.get(pipeline or default)
        outbound = declaration.outbound if declaration else Outbound()
        return Retries(outbound.retries, outbound.retry_delay_secs)

    return retries


def _targets(args: argparse.Namespace) -> list[Target]:
    variables = parse_variables(args.var)
    if args.csv is None:
        return [Target(to=args.to, pipeline=args.pipeline, variables=variables)]
    return [
        Target(t.to, t.pipeline or args.pipeline, variables | t.variables)
        for t in read_numbers(args.csv)
    ]


def _say(line: str) -> None:
    print(line, flush=True)
