"""A call's variables (`{name}`) in what its bot says: the prompt and the outbound lines."""

import re
from dataclasses import replace

from pipelines.declaration import Declaration

# `{name}`: a variable; any other brace (JSON in a prompt, `{{`) is left as it is.
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TEMPLATED = ("system_prompt", "outbound_greeting", "voicemail")  # the [bot] keys filled in


class VariablesError(ValueError):
    """Variables that are malformed, or missing for the lines that name them."""


def placeholders(text: str | None) -> set[str]:
    """The variable names `text` refers to."""
    return set(_PLACEHOLDER.findall(text or ""))


def fill(text: str, variables: dict[str, str]) -> str:
    """`text` with each `{name}` in `variables` replaced by its value; others left as they are."""
    return _PLACEHOLDER.sub(lambda m: variables.get(m.group(1), m.group(0)), text)


def check(declaration: Declaration, variables: dict[str, str]) -> None:
    """Raise `VariablesError` naming bad names, or those the outbound lines need and lack."""
    if bad := sorted(name for name in variables if not _NAME.match(name)):
        raise VariablesError(f"variable names must be identifiers (letters, digits, _): {bad}")
    bot = declaration.bot
    needed = placeholders(bot.outbound_greeting) | placeholders(bot.voicemail)
    if missing := sorted(needed - set(variables)):
        raise VariablesError(
            f"pipeline {declaration.name!r} says {', '.join('{' + m + '}' for m in missing)} "
            f"in its outbound lines: give {', '.join(missing)} in `variables`"
        )


def with_variables(declaration: Declaration, variables: dict[str, str]) -> Declaration:
    """`declaration` with its prompt and outbound lines filled in for one call."""
    if not variables:
        return declaration
    bot = declaration.bot
    filled = {key: fill(getattr(bot, key), variables) for key in TEMPLATED if getattr(bot, key)}
    return replace(declaration, bot=bot.model_copy(update=filled))
