"""A bot's pipeline as a person writes it: a TOML file, validated into typed settings."""

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pipelines.provider import Options, Provider
from pipelines.registry import STAGES
from pipelines.tools import HttpTool, tool_problems
from pipelines.transfer import TransferTarget

PIPELINES_DIR = Path(__file__).parent  # the pipelines that ship with the bot
ROUTES_FILE = "routes.toml"  # not a pipeline: the routing table (pipelines/routing.py)
CASCADE = ("stt", "llm", "tts")
SECTIONS = (
    "bot",
    "turn",
    "call",
    "outbound",
    "keypad",
    *CASCADE,
    "speech_to_speech",
    "tools",
    "transfer",
)
STAGE_NAMES = {"stt": "STT", "llm": "LLM", "tts": "TTS", "speech_to_speech": "speech-to-speech"}


class DeclarationError(Exception):
    """A pipeline file is missing or invalid; the message names the file and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


# What the bot says when something goes wrong, in English: a bot in another language must
# say each of these in its own (the declaration is refused otherwise).
ENGLISH_LINES = {
    "busy": "Sorry, all our lines are busy right now. Please call back in a few minutes. Goodbye.",
    "apology": "Sorry, I had a problem on my end. Could you say that again?",
    "unavailable": "Sorry, I can't take your call right now because of a technical problem. "
    "Please call back in a few minutes. Goodbye.",
    "silence_prompt": "Are you still there?",
    "silence_goodbye": "I haven't heard from you, so I'll hang up now. Goodbye.",
    "time_up": "We've reached the time limit for this call. Thank you for calling. Goodbye.",
    "shutdown_goodbye": "I'm sorry, I have to end the call now. Please call back in a minute. "
    "Goodbye.",
}


class Bot(_Section):
    """What the bot says, and in which language.

    Besides its greeting and farewell: `busy` (the server is full or shutting down: said by
    Twilio instead of connecting the call), `apology` (a provider failed mid-call; the call goes
    on), `unavailable` (the call cannot go on: said before hanging up), `silence_prompt` and
    `silence_goodbye` (a silent caller), `time_up` (the call reached `[call] max_secs`) and
    `shutdown_goodbye` (the server is shutting down and could not wait for the call to end).
    Calls the bot places (`POST /calls`) open with `outbound_greeting` when a person answers
    and leave `voicemail` on an answering machine; both may name the call's variables
    (`{name}`), as may `system_prompt`.
    """

    system_prompt: str = Field(min_length=1)
    greeting: str = Field(min_length=1)
    farewell: str = Field(min_length=1)
    language: str = Field(default="en", pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    busy: str = Field(default=ENGLISH_LINES["busy"], min_length=1)
    apology: str = Field(default=ENGLISH_LINES["apology"], min_length=1)
    unavailable: str = Field(default=ENGLISH_LINES["unavailable"], min_length=1)
    silence_prompt: str = Field(default=ENGLISH_LINES["silence_prompt"], min_length=1)
    silence_goodbye: str = Field(default=ENGLISH_LINES["silence_goodbye"], min_length=1)
    time_up: str = Field(default=ENGLISH_LINES["time_up"], min_length=1)
    shutdown_goodbye: str = Field(default=ENGLISH_LINES["shutdown_goodbye"], min_length=1)
    outbound_greeting: str | None = Field(default=None, min_length=1)
    voicemail: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _lines_in_its_language(self) -> "Bot":
        if self.language.split("-")[0] == "en":
            return self
        english = [key for key, line in ENGLISH_LINES.items() if getattr(self, key) == line]
        if english:
            raise ValueError(
                f"a bot in language {self.language!r} must say these in it too: "
                f"{', '.join(english)} (the defaults are English)"
            )
        return self


class CallLimits(_Section):
    """`[call]`: how long a caller may stay silent, how long a call may last, who hears of it.

    Silent for `silence_prompt_secs` (while the bot is quiet): the bot says its
    `silence_prompt`; silent for `silence_goodbye_secs` more: `silence_goodbye`, then it hangs
    up. At `max_secs` the bot says `time_up` and hangs up. `webhook_url`: where each finished
    call's record is POSTed (instead of CALL_WEBHOOK_URL).
    """

    silence_prompt_secs: float = Field(default=10.0, ge=1, le=300)
    silence_goodbye_secs: float = Field(default=10.0, ge=1, le=300)
    max_secs: float = Field(default=1800.0, ge=10, le=14400)  # Twilio's own cap: 4 hours
    # Twilio records both channels of the call (what the caller heard, what they said).
    record: bool = False
    webhook_url: str | None = None

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class Outbound(_Section):
    """`[outbound]`: how the calls this bot places are made.

    `caller_id`: the number they come from (default: TWILIO_PHONE_NUMBER). Twilio's answering
    machine detection listens to the callee for at most `machine_detection_timeout_secs`; a
    verdict that never arrives is taken as a person. `python bot.py dial` places a number that
    was busy or did not answer again `retries` times, `retry_delay_secs` apart.
    """

    caller_id: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{6,14}$")
    machine_detection_timeout_secs: int = Field(default=30, ge=3, le=59)  # Twilio's bounds
    retries: int = Field(default=2, ge=0, le=10)
    retry_delay_secs: float = Field(default=60.0, ge=0, le=86400)


class Turn(_Section):
    """When the caller's turn starts (Silero VAD) and ends.

    `end`: "speech-timeout" (the VAD's silence plus `user_speech_timeout`), "smart-turn"
    (Smart Turn v3 judges each VAD stop: `smart_turn_complete_secs` more after a finished
    sentence, `smart_turn_max_secs` after a surely unfinished one), or "provider"
    (the STT or speech-to-speech service decides, e.g. Deepgram Flux). Unset: "provider" for
    a service that always decides, "speech-timeout" otherwise.
    """

    end: Literal["speech-timeout", "smart-turn", "provider"] | None = None
    vad_confidence: float = Field(default=0.7, gt=0, le=1)
    vad_start_secs: float = Field(default=0.06, ge=0, le=2)
    vad_stop_secs: float = Field(default=0.2, ge=0, le=2)
    vad_min_volume: float = Field(default=0.6, ge=0, le=1)
    user_speech_timeout: float = Field(default=0.4, ge=0, le=5)
    # With "smart-turn": after the VAD's stop, a finished sentence ends after this much more
    # silence, a surely unfinished one (Smart Turn's probability under
    # `smart_turn_unfinished_below`) after `smart_turn_max_secs`, any other after
    # `user_speech_timeout`; the words so far move that a step (`turns/words_end.py`).
    smart_turn_complete_secs: float = Field(default=0.3, ge=0, le=5)
    smart_turn_max_secs: float = Field(default=1.0, gt=0, le=10)
    smart_turn_unfinished_below: float = Field(default=0.1, ge=0, le=0.5)
    # Speculative replies: after this much silence mid-turn the LLM starts on the words so
    # far, its reply held until the turn ends on the same words (else dropped unheard).
    speculative: bool = True
    speculate_after_secs: float = Field(default=0.064, ge=0.03, le=2)
    # ...or this much after words the STT ended as a sentence ("…on Saturday?")
    speculate_after_sentence_secs: float = Field(default=0.032, ge=0.03, le=2)
    max_speculative_replies: int = Field(default=3, ge=1, le=10)
    # While the bot is audible, a barge-in needs this much speech after the VAD fires, or
    # this many transcribed words: a cough or an "mm-hm" does not cut the bot off.
    min_barge_in_secs: float = Field(default=0.7, ge=0, le=5)
    min_barge_in_words: int = Field(default=2, ge=1, le=20)


KEYS = "0123456789*#"  # a phone's keypad
# What a keypad shortcut can do, without asking the LLM. A name here needs its handler:
# `repeat` is the keypad's own (pipelines/build.py); others are registered by the server.
KEYPAD_ACTIONS = ("repeat", "transfer")  # transfer: to the first [[transfer]] target


class Keypad(_Section):
    """`[keypad]`: how the caller's key presses become a turn, and keys that act at once.

    Keys are collected into one entry until `end_key` (`""`: none), `max_digits` keys (0: no
    limit) or `pause_secs` without a key; the entry then goes to the LLM as one caller turn.
    `shortcuts` maps a key to an action (`"9" = "repeat"`: say the last reply again;
    `"0" = "transfer"`: to the first `[[transfer]]` target); a shortcut acts when it is the
    first key of an entry.
    """

    end_key: Literal["#", "*", ""] = "#"
    max_digits: int = Field(default=0, ge=0, le=32)
    pause_secs: float = Field(default=1.5, ge=0.3, le=10)
    shortcuts: dict[str, str] = Field(default_factory=dict)

    @field_validator("shortcuts")
    @classmethod
    def _known_keys_and_actions(cls, shortcuts: dict[str, str]) -> dict[str, str]:
        for key, action in shortcuts.items():
            if len(key) != 1 or key not in KEYS:
                raise ValueError(f"{key!r} is not a key of a phone's keypad: 0-9, * or #")
            if action not in KEYPAD_ACTIONS:
                raise ValueError(
                    f"key {key!r}: {action!r} is not a keypad action; choose one of: "
                    + ", ".join(KEYPAD_ACTIONS)
                )
        return shortcuts


@dataclass(frozen=True)
class Stage:
    """One stage of a pipeline: the provider named in the file and its validated options."""

    provider: Provider
    options: Options

    def needs(self) -> tuple[str, ...]:
        """The environment variables this stage cannot run without."""
        return self.provider.needs(self.options)


@dataclass(frozen=True)
class Declaration:
    """One bot: what it says, how turns end, and the provider of each stage.

    Either `stt`, `llm` and `tts` (a cascade) or `speech_to_speech` alone.
    """

    name: str
    path: Path
    bot: Bot
    turn: Turn
    call: CallLimits = CallLimits()
    outbound: Outbound = Outbound()
    keypad: Keypad = Keypad()
    stt: Stage | None = None
    llm: Stage | None = None
    tts: Stage | None = None
    speech_to_speech: Stage | None = None
    tools: tuple[HttpTool, ...] = ()  # [[tools]]: HTTP tools the LLM may call
    transfers: tuple[TransferTarget, ...] = ()  # [[transfer]]: offered to the LLM if any

    @property
    def stages(self) -> dict[str, Stage]:
        """The declared stages by section name."""
        named = {s: getattr(self, s) for s in (*CASCADE, "speech_to_speech")}
        return {section: stage for section, stage in named.items() if stage}

    @property
    def turn_end(self) -> str:
        """How the caller's turn ends (`Turn.end`, its default resolved)."""
        return self.turn.end or (
            "provider" if self._turn_owner().turn_ends == "own" else "speech-timeout"
        )

    def needs(self) -> set[str]:
        """The environment variables its providers and tools need."""
        tools = {name for tool in self.tools for name in tool.needs()}
        return tools | {name for stage in self.stages.values() for name in stage.needs()}

    def summary(self) -> str:
        """e.g. `stt=deepgram llm=openai tts=cartesia`."""
        return " ".join(f"{s}={stage.provider.name}" for s, stage in self.stages.items())

    def _turn_owner(self) -> Provider:
        stage = self.speech_to_speech or self.stt
        assert stage is not None
        return stage.provider


def load_declaration(path: Path) -> Declaration:
    """Parse and validate one pipeline file; its name is the file's stem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DeclarationError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise DeclarationError(f"{path}: not valid TOML: {e}") from None
    problems: list[str] = []
    declaration = _declaration(path, data, problems)
    if problems or declaration is None:
        raise DeclarationError("\n".join([f"{path}: invalid pipeline declaration", *problems]))
    return declaration


def pipelines_dir() -> Path:
    """Where the server's pipeline files are: PIPELINES_DIR (environment or `.env`), or ours."""
    chosen = os.environ.get("PIPELINES_DIR") or dotenv_values(".env").get("PIPELINES_DIR")
    return Path(chosen) if chosen else PIPELINES_DIR


def load_declarations(directory: Path | None = None) -> dict[str, Declaration]:
    """Every pipeline file (`*.toml` but the routing table) in `directory`, by name.

    `directory` defaults to `pipelines_dir()`.
    """
    directory = directory or pipelines_dir()
    paths = sorted(p for p in directory.glob("*.toml") if p.name != ROUTES_FILE)
    if not paths:
        raise DeclarationError(f"{directory}: no pipeline files (*.toml)")
    return {path.stem: load_declaration(path) for path in paths}


def _declaration(path: Path, data: dict[str, Any], problems: list[str]) -> Declaration | None:
    for key in data:
        if key not in SECTIONS:
            problems.append(f"  {key}: unknown section; the sections are: {', '.join(SECTIONS)}")
    bot = _section(Bot, "bot", data.get("bot"), problems, required=True)
    turn = _section(Turn, "turn", data.get("turn", {}), problems)
    call = _section(CallLimits, "call", data.get("call", {}), problems)
    outbound = _section(Outbound, "outbound", data.get("outbound", {}), problems)
    keypad = _section(Keypad, "keypad", data.get("keypad", {}), problems)
    stages = {s: _stage(s, data[s], problems) for s in (*CASCADE, "speech_to_speech") if s in data}
    tools = _tools(data.get("tools", []), problems)
    transfers = _transfers(data.get("transfer", []), problems)
    _check_shape(data, problems)
    if (
        problems
        or bot is None
        or turn is None
        or call is None
        or keypad is None
        or outbound is None
    ):
        return None
    declaration = Declaration(
        name=path.stem,
        path=path,
        bot=bot,
        turn=turn,
        call=call,
        outbound=outbound,
        keypad=keypad,
        tools=tools,
        transfers=transfers,
        **stages,
    )
    _check_stages(declaration, problems)
    return declaration


def _section(model: type[BaseModel], key: str, raw: Any, problems: list[str], *, required=False):
    if raw is None and required:
        problems.append(f"  [{key}]: required, but missing")
        return None
    if not isinstance(raw, dict):
        problems.append(f"  {key}: must be a table ([{key}]), got {raw!r}")
        return None
    try:
        return model(**raw)
    except ValidationError as e:
        problems.extend(_describe(key, e, model))
        return None


def _stage(section: str, raw: Any, problems: list[str]) -> Stage | None:
    choices = STAGES[section]
    kind = STAGE_NAMES[section]
    if not isinstance(raw, dict):
        problems.append(f"  {section}: must be a table ([{section}]), got {raw!r}")
        return None
    name = raw.get("provider")
    if name not in choices:
        said = f"{name!r} is not a known {kind} provider" if name else "required, but missing"
        problems.append(f"  {section}.provider: {said}; choose one of: {', '.join(choices)}")
        return None
    provider = choices[name]
    options = {k: v for k, v in raw.items() if k != "provider"}
    try:
        return Stage(provider, provider.options(**options))
    except ValidationError as e:
        problems.extend(_describe(section, e, provider.options, f"{kind} provider {name!r}"))
        return None


def _tools(raw: Any, problems: list[str]) -> tuple[HttpTool, ...]:
    if not isinstance(raw, list):
        problems.append(f"  tools: must be a list of tables ([[tools]]), got {raw!r}")
        return ()
    tools = [_section(HttpTool, f"tools[{i}]", entry, problems) for i, entry in enumerate(raw)]
    valid = [(i, tool) for i, tool in enumerate(tools) if tool]
    for position, (i, tool) in enumerate(valid):
        problems.extend(tool_problems(tool, f"tools[{i}]"))
        if any(other.name == tool.name for _, other in valid[:position]):
            problems.append(f"  tools[{i}].name: {tool.name!r} is declared twice")
    return tuple(tool for _, tool in valid)


def _transfers(raw: Any, problems: list[str]) -> tuple[TransferTarget, ...]:
    if not isinstance(raw, list):
        problems.append(f"  transfer: must be a list of tables ([[transfer]]), got {raw!r}")
        return ()
    targets = [_section(TransferTarget, f"transfer[{i}]", t, problems) for i, t in enumerate(raw)]
    names = [t.name for t in targets if t]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"  transfer: the name {name!r} is declared more than once")
    return tuple(t for t in targets if t)


def _check_shape(data: dict[str, Any], problems: list[str]) -> None:
    cascade = [s for s in CASCADE if s in data]
    if "speech_to_speech" in data:
        if "keypad" in data:
            problems.append("  keypad: not available with [speech_to_speech] yet; remove it")
        if cascade:
            problems.append(
                f"  speech_to_speech: declare either [speech_to_speech] or [stt], [llm] and "
                f"[tts], not both (found {', '.join(f'[{s}]' for s in cascade)})"
            )
        return
    for section in CASCADE:
        if section not in data:
            problems.append(
                f"  [{section}]: required, but missing (or declare [speech_to_speech] instead "
                "of [stt], [llm] and [tts])"
            )


def _check_stages(declaration: Declaration, problems: list[str]) -> None:
    for section, stage in declaration.stages.items():
        problem = stage.provider.check(stage.options, declaration.bot.language)
        if problem:
            problems.append(f"  {section}: {problem}")
    _check_turn(declaration, problems)
    _check_keypad(declaration, problems)


def _check_keypad(declaration: Declaration, problems: list[str]) -> None:
    for key, action in declaration.keypad.shortcuts.items():
        if action == "transfer" and not declaration.transfers:
            problems.append(
                f"  keypad.shortcuts: key {key!r}: 'transfer' needs a [[transfer]] target; "
                "declare one or remove the shortcut"
            )


def _check_turn(declaration: Declaration, problems: list[str]) -> None:
    section = "speech_to_speech" if declaration.speech_to_speech else "stt"
    owner = declaration._turn_owner()
    end = declaration.turn.end
    if owner.turn_ends == "own" and end not in (None, "provider"):
        problems.append(
            f"  turn.end: {section}.provider {owner.name!r} decides when turns end itself; "
            f'set turn.end = "provider" or leave it out (got {end!r})'
        )
    if owner.turn_ends == "local" and end == "provider":
        can = [p.name for p in STAGES[section].values() if p.turn_ends != "local"]
        problems.append(
            f"  turn.end: {section}.provider {owner.name!r} does not detect turn ends; "
            f'"provider" needs one of: {", ".join(can) or "none"}; '
            'or choose "speech-timeout" or "smart-turn"'
        )


def _describe(
    section: str, error: ValidationError, model: type[BaseModel], owner: str = ""
) -> list[str]:
    lines = []
    for issue in error.errors():
        key = ".".join([section, *(str(part) for part in issue["loc"])])
        if issue["type"] == "missing":
            lines.append(f"  {key}: required, but missing")
        elif issue["type"] == "extra_forbidden":
            of = f" of {owner}" if owner else f" in [{section}]"
            lines.append(f"  {key}: unknown option{of}; valid options: {_options(model)}")
        else:
            message = issue["msg"].removeprefix("Value error, ")
            got = f" (got {issue.get('input')!r})" if issue["loc"] else ""  # not a whole table
            lines.append(f"  {key}: {message}{got}")
    return lines


def _options(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields) or "none"
