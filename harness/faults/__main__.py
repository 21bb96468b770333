"""Run the whole fault matrix: one line per fault, injected, survived or not, what was heard.

`python -m harness.faults [NAME-FILTER]` (or `make faults`)
"""

import asyncio
import sys
import time
from importlib import import_module

from harness.faults import Fault, Outcome

AREAS = (
    "stt",
    "llm",
    "tts",
    "twilio",
    "tools",
    "transfer",
    "overload",
    "shutdown",
    "silence",
    "hostile",
    "outbound",
    "records",
)


def faults() -> list[Fault]:
    """Every fault of every area, in the order of AREAS."""
    found = []
    for area in AREAS:
        try:
            module = import_module(f"harness.faults.{area}")
        except ModuleNotFoundError as e:
            if e.name != f"harness.faults.{area}":
                raise
            continue
        found.extend(module.FAULTS)
    return found


async def run(fault: Fault) -> Outcome:
    """One scenario; an exception is a fault not survived."""
    try:
        return await asyncio.wait_for(fault.run(), 120)
    except Exception as e:
        return Outcome(survived=False, heard=[], problems=[f"{type(e).__name__}: {e}"])


def line(fault: Fault, outcome: Outcome, seconds: float) -> str:
    """`SURVIVED  name  | injected: …  | heard: "…" / "…"  | figures  (12.3 s)`."""
    verdict = "SURVIVED" if outcome.survived else "FAILED  "
    heard = " / ".join(f'"{h}"' for h in outcome.heard) or "nothing"
    parts = [f"{verdict}  {fault.name}", f"injected: {fault.injected}", f"heard: {heard}"]
    if outcome.figures:
        parts.append(outcome.figures)
    parts.extend(f"PROBLEM: {p}" for p in outcome.problems)
    return "\n    ".join([" | ".join(parts[:2]), *parts[2:]]) + f"   ({seconds:.1f} s)"


async def main(pattern: str = "") -> int:
    """Run the faults whose name contains `pattern`; exit 1 if any was not survived."""
    selected = [f for f in faults() if pattern.lower() in f.name.lower()]
    failed = 0
    for fault in selected:
        started = time.monotonic()
        outcome = await run(fault)
        failed += not outcome.survived
        print(line(fault, outcome, time.monotonic() - started), flush=True)
    print(f"\n{len(selected) - failed} of {len(selected)} faults survived")
    return 1 if failed else 0


if __name__ == "__main__":
    from server.logs import configure_logging

    configure_logging("ERROR")
    sys.exit(asyncio.run(main(" ".join(sys.argv[1:]))))
