"""`python bot.py dial`: one number, or a CSV campaign, through the bot's operator API."""

import argparse
import asyncio
import os
import sys
from pathlib import Path

from dotenv import dotenv_values

from dialer.api import BotAPI
from dialer.campaign import Campaign, Retries, summary, write_results
from dialer.numbers import NumbersError, Target, parse_variables, read_numbers
from pipelines.declaration import DeclarationError, Outbound, load_declarations


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
    """Place the calls, print each outcome and a summary; 2 on a usage or configuration error."""
    environ = {**dotenv_values(".env"), **os.environ}
    server, token = args.server or environ.get("PUBLIC_URL"), environ.get("API_TOKEN")
    problems = [] if token else ["API_TOKEN is not set (the server's operator API token)"]
    if not server:
        problems.append("no server: give --server or set PUBLIC_URL")
    if (args.csv is None) == (args.to is None):
        problems.append("give one number to call, or --csv with many")
    try:
        targets = _targets(args)
        declarations = load_declarations()
    except (NumbersError, DeclarationError) as e:
        problems.append(str(e))
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    default = environ.get("PIPELINE") or "default"

    def retries(pipeline: str | None) -> Retries:
        declaration = declarations.get(pipeline or default)
        outbound = declaration.outbound if declaration else Outbound()
        return Retries(outbound.retries, outbound.retry_delay_secs)

    campaign = Campaign(
        BotAPI(server, token), concurrency=args.concurrency, retries=retries, say=_say
    )
    attempts = asyncio.run(campaign.run(targets))
    print(summary(attempts), flush=True)
    if args.csv or args.out:
        out = args.out or args.csv.with_suffix(".results.csv")
        write_results(out, attempts)
        print(f"every call's outcome: {out}")
    return 0


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
