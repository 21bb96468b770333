"""A bot's pipeline as a person writes it: a TOML file, validated into typed settings."""

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PIPELINES_DIR = Path(__file__).parent


class DeclarationError(Exception):
    """A pipeline file is missing or invalid; the message names the file and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Bot(_Section):
    """What the bot says."""

    system_prompt: str = Field(min_length=1)
    greeting: str = Field(min_length=1)
    farewell: str = Field(min_length=1)


class Turn(_Section):
    """When the caller's turn starts (Silero VAD) and ends (VAD silence + speech timeout)."""

    vad_confidence: float = Field(default=0.7, gt=0, le=1)
    vad_start_secs: float = Field(default=0.06, ge=0, le=2)
    vad_stop_secs: float = Field(default=0.2, ge=0, le=2)
    vad_min_volume: float = Field(default=0.6, ge=0, le=1)
    user_speech_timeout: float = Field(default=0.4, ge=0, le=5)
    # While the bot is audible, a barge-in needs this much speech after the VAD fires, or
    # this many transcribed words: a cough or an "mm-hm" does not cut the bot off.
    min_barge_in_secs: float = Field(default=0.7, ge=0, le=5)
    min_barge_in_words: int = Field(default=2, ge=1, le=20)


class STT(_Section):
    """Speech to text."""

    provider: Literal["deepgram"]
    model: str = "nova-3-general"
    language: str = "en"


class LLM(_Section):
    """The language model."""

    provider: Literal["openai"]
    model: str = "gpt-4.1-mini"
    temperature: float | None = Field(default=None, ge=0, le=2)


class TTS(_Section):
    """Text to speech."""

    provider: Literal["deepgram"]
    voice: str = "aura-2-thalia-en"


class Declaration(_Section):
    """One bot: what it says and the providers of each stage."""

    name: str
    bot: Bot
    turn: Turn = Turn()
    stt: STT
    llm: LLM
    tts: TTS


def load_declaration(path: Path) -> Declaration:
    """Parse and validate one pipeline file; its name is the file's stem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DeclarationError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise DeclarationError(f"{path}: not valid TOML: {e}") from None
    try:
        return Declaration(name=path.stem, **data)
    except ValidationError as e:
        raise DeclarationError(_describe(path, e)) from None


def load_declarations(directory: Path = PIPELINES_DIR) -> dict[str, Declaration]:
    """Every `*.toml` pipeline in `directory`, by name."""
    paths = sorted(directory.glob("*.toml"))
    if not paths:
        raise DeclarationError(f"{directory}: no pipeline files (*.toml)")
    return {path.stem: load_declaration(path) for path in paths}


def _describe(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: invalid pipeline declaration"]
    for issue in error.errors():
        key = ".".join(str(part) for part in issue["loc"])
        if issue["type"] == "missing":
            lines.append(f"  {key}: required, but missing")
        elif issue["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        else:
            lines.append(f"  {key}: {issue['msg']} (got {issue.get('input')!r})")
    return "\n".join(lines)
