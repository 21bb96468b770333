"""Which pipeline answers a call.

In order: a stream `<Parameter name="pipeline">`, the number called, the default.
"""

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from pipelines.declaration import PIPELINES_DIR, ROUTES_FILE, DeclarationError

PIPELINE_PARAMETER = "pipeline"
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


@dataclass(frozen=True)
class Routes:
    """The routing table and the pipelines this server can run."""

    default: str
    numbers: dict[str, str] = field(default_factory=dict)
    served: frozenset[str] = frozenset()

    @property
    def required(self) -> set[str]:
        """The pipelines calls are routed to without asking: the default and the numbers'."""
        return {self.default, *self.numbers.values()}

    def choose(self, parameter: str | None, called: str | None) -> tuple[str, str]:
        """The pipeline for a call, and why it was chosen."""
        if parameter:
            if parameter in self.served:
                return parameter, f"stream parameter {PIPELINE_PARAMETER}={parameter}"
            logger.warning(
                f"stream parameter {PIPELINE_PARAMETER}={parameter!r} names no pipeline this "
                f"server runs ({', '.join(sorted(self.served))}); routing by number instead"
            )
        if called and called in self.numbers:
            return self.numbers[called], f"called number {called}"
        return self.default, "the default"


def load_routes(default: str, served: set[str], path: Path = PIPELINES_DIR / ROUTES_FILE) -> Routes:
    """Read the routing table (an optional file); every pipeline it names must be `served`."""
    numbers: dict[str, str] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise DeclarationError(f"{path}: not valid TOML: {e}") from None
        numbers = _numbers(path, data, served)
    if default not in served:
        raise DeclarationError(
            f"PIPELINE={default!r} is not a pipeline this server can run; choose one of: "
            f"{', '.join(sorted(served))}"
        )
    return Routes(default=default, numbers=numbers, served=frozenset(served))


def _numbers(path: Path, data: dict, served: set[str]) -> dict[str, str]:
    problems = [
        f"  {key}: unknown section; the only section is: numbers"
        for key in data
        if key != "numbers"
    ]
    numbers = data.get("numbers", {})
    for number, pipeline in numbers.items():
        if not _E164.match(number):
            problems.append(f'  numbers.{number!r}: not an E.164 number like "+14155550100"')
        if pipeline not in served:
            problems.append(
                f"  numbers.{number!r}: {pipeline!r} is not a pipeline this server can run; "
                f"choose one of: {', '.join(sorted(served))}"
            )
    if problems:
        raise DeclarationError("\n".join([f"{path}: invalid routing table", *problems]))
    return dict(numbers)
