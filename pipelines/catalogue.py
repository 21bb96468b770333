"""The providers a pipeline file may name, with their options, as text for people."""

from pydantic_core import PydanticUndefined

from pipelines.provider import Provider
from pipelines.registry import STAGES

_STAGE_TITLES = {
    "stt": "[stt] speech to text",
    "llm": "[llm] language model",
    "tts": "[tts] text to speech",
    "speech_to_speech": "[speech_to_speech] instead of [stt], [llm] and [tts]",
}


def describe_providers() -> str:
    """Every stage's providers, each with its options, defaults and what it needs."""
    lines: list[str] = []
    for stage, providers in STAGES.items():
        lines.append(_STAGE_TITLES[stage])
        for provider in providers.values():
            lines.extend(_describe(provider))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _describe(provider: Provider) -> list[str]:
    lines = [f'  provider = "{provider.name}"  # {provider.summary}']
    for name, field in provider.options.model_fields.items():
        if field.default is PydanticUndefined and field.default_factory is None:
            value = "(required)"
        else:
            default = field.get_default(call_default_factory=True)
            value = "(not set)" if default is None else _toml(default)
        note = f"  # {field.description}" if field.description else ""
        lines.append(f"    {name} = {value}{note}")
    return lines


def _toml(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)
