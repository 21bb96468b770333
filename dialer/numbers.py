"""Who to call: a CSV file of numbers (and each call's variables), or one number."""

import csv
from dataclasses import dataclass, field
from pathlib import Path

TO_COLUMN, PIPELINE_COLUMN = "to", "pipeline"


class NumbersError(ValueError):
    """The numbers file or a `--var` is malformed; the message says where."""


@dataclass(frozen=True)
class Target:
    """One number to call, with the pipeline and the variables of its call."""

    to: str
    pipeline: str | None = None
    variables: dict[str, str] = field(default_factory=dict)


def read_numbers(path: Path) -> list[Target]:
    """The rows of a CSV file with a header: `to`, optionally `pipeline`, then variables.

    E.g. `to,name` then `+15551230000,Ada`: every other column is a variable of that call.
    """
    try:
        with path.open(newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            rows, header = list(reader), reader.fieldnames or []
    except OSError as e:
        raise NumbersError(f"{path}: cannot read: {e.strerror}") from None
    if TO_COLUMN not in header:
        raise NumbersError(f"{path}: no '{TO_COLUMN}' column (the header is {header})")
    targets = []
    for line, row in enumerate(rows, start=2):
        to = (row.pop(TO_COLUMN) or "").strip()
        if not to:
            raise NumbersError(f"{path}:{line}: no number in the '{TO_COLUMN}' column")
        pipeline = (row.pop(PIPELINE_COLUMN, None) or "").strip() or None
        variables = {name: (value or "").strip() for name, value in row.items() if name}
        targets.append(Target(to=to, pipeline=pipeline, variables=variables))
    if not targets:
        raise NumbersError(f"{path}: no numbers")
    return targets


def parse_variables(pairs: list[str]) -> dict[str, str]:
    """`["name=Ada", …]` as a dict; NumbersError naming a pair without `=`."""
    variables = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise NumbersError(f"--var {pair!r}: write it as name=value")
        variables[name.strip()] = value
    return variables
