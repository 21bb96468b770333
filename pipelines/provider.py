"""What a provider is: its options in a pipeline file, what it needs, and how it is built."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pipecat.processors.frame_processor import FrameProcessor
from pydantic import BaseModel, ConfigDict


class Options(BaseModel):
    """A provider's options, as written under its stage in a pipeline file."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class MissingVariable(Exception):
    """A provider needs an environment variable that is not set."""


@dataclass(frozen=True)
class ProviderAccess:
    """Credentials and base URLs from the environment, by variable name."""

    values: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> str:
        value = self.values.get(name)
        if not value:
            raise MissingVariable(f"{name} is not set")
        return value

    def get(self, name: str, default: str = "") -> str:
        """The variable's value, or `default` when it is unset or empty."""
        return self.values.get(name) or default


@dataclass(frozen=True)
class ProviderContext:
    """What a provider's factory gets besides its options."""

    access: ProviderAccess
    system_prompt: str
    language: str  # the bot's language (BCP 47), for options that leave it unset
    sample_rate: int = 8000
    speculative: bool = False  # [turn] speculative: replies may start before the turn ends


@dataclass(frozen=True)
class Provider:
    """One choice for one stage of a pipeline.

    `needs` lists the environment variables it cannot run without, given its options;
    `check` says what is wrong with its options for the bot's language, if anything.
    `turn_ends`: "local" if the pipeline must detect the end of the caller's turn (VAD and
    a turn strategy), "own" if the service always decides it (Deepgram Flux), "either" if
    it can (a speech-to-speech service with server-side turn detection).
    """

    name: str
    summary: str
    options: type[Options]
    make: Callable[[Any, ProviderContext], FrameProcessor]
    needs: Callable[[Any], tuple[str, ...]] = lambda _options: ()
    turn_ends: Literal["local", "own", "either"] = "local"
    check: Callable[[Any, str], str | None] = lambda _options, _language: None
