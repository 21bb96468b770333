"""HTTP tools a pipeline file declares (`[[tools]]`): what the LLM sees and how each is called."""

import re
from collections.abc import Iterator
from typing import Literal
from urllib.parse import urlsplit

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pydantic import BaseModel, ConfigDict, Field

BUILT_IN_TOOLS = ("end_call", "transfer_call")  # offered by the bot itself, not declarable
BODY_METHODS = ("POST", "PUT", "PATCH")  # the arguments go as a JSON body, which is signed
VARIABLE = r"^[A-Z][A-Z0-9_]*$"  # an environment variable's name
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_PARAMETER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Property(BaseModel):
    """One argument, as JSON Schema describes it (`enum`, `items`, `minimum`… are kept)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: Literal["string", "number", "integer", "boolean", "array", "object"]
    description: str = ""


class Parameters(BaseModel):
    """The tool's arguments: a JSON Schema object."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["object"] = "object"
    properties: dict[str, Property] = Field(default_factory=dict)
    required: list[str] = Field(default_factory=list)


class HttpTool(BaseModel):
    """One `[[tools]]` entry: a function the LLM may call, run as one HTTP request.

    `url` may hold `{parameter}`s in its path and query (URL-encoded when filled in); with
    POST, PUT and PATCH the arguments also go as the JSON body, signed with the secret in
    `secret_env` (`X-Bot-Signature`). `headers` maps a header to the variable holding its
    value. A call that takes over `filler_after_secs` has the bot say `filler`, once.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str = Field(min_length=1)
    parameters: Parameters = Parameters()
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)  # header → environment variable
    secret_env: str | None = Field(default=None, pattern=VARIABLE)
    timeout_secs: float = Field(default=5.0, gt=0, le=30)
    filler: str | None = Field(default=None, min_length=1)
    filler_after_secs: float = Field(default=1.0, ge=0, le=10)

    @property
    def placeholders(self) -> list[str]:
        """The parameters the URL names, in order."""
        return _PLACEHOLDER.findall(self.url)

    def needs(self) -> tuple[str, ...]:
        """The environment variables its requests cannot be made without."""
        return (*self.headers.values(), *([self.secret_env] if self.secret_env else []))

    def schema(self) -> FunctionSchema:
        """The function as the LLM is offered it."""
        properties = {
            name: p.model_dump(exclude_defaults=True)
            for name, p in self.parameters.properties.items()
        }
        return FunctionSchema(
            name=self.name,
            description=self.description,
            properties=properties,
            required=list(self.parameters.required),
        )


def tool_problems(tool: HttpTool, key: str) -> list[str]:
    """What is wrong with `tool` beyond each option's own shape, as `  key.option: …` lines."""
    found = [*_url_problems(tool), *_parameter_problems(tool), *_option_problems(tool)]
    return [f"  {key}.{option}: {message}" for option, message in found]


Problems = Iterator[tuple[str, str]]  # (the option, what is wrong with it)


def _url_problems(tool: HttpTool) -> Problems:
    parts = urlsplit(_PLACEHOLDER.sub("x", tool.url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        yield "url", f"must be an http:// or https:// URL with a host (got {tool.url!r})"
    elif "{" in urlsplit(tool.url).netloc:
        yield "url", f"the host cannot hold a {{parameter}} (got {tool.url!r})"
    declared = tool.parameters.properties
    for name in tool.placeholders:
        if name not in declared:
            yield "url", f"{{{name}}} is not a parameter; declared: {', '.join(declared) or 'none'}"
        elif name not in tool.parameters.required:
            yield "url", f"{{{name}}} must be in parameters.required (got {name!r})"


def _parameter_problems(tool: HttpTool) -> Problems:
    for name in tool.parameters.properties:
        key = f"parameters.properties.{name}"
        if not _PARAMETER.match(name):
            yield key, "a parameter is a letter or _, then letters, digits or _"
        elif tool.method not in BODY_METHODS and name not in tool.placeholders:
            yield (
                key,
                (
                    f"a {tool.method} tool sends its arguments only in the URL: put {{{name}}} "
                    "in url, or use POST"
                ),
            )
    for name in tool.parameters.required:
        if name not in tool.parameters.properties:
            yield "parameters.required", f"{name!r} is not in parameters.properties"


def _option_problems(tool: HttpTool) -> Problems:
    if tool.name in BUILT_IN_TOOLS:
        yield "name", f"{tool.name!r} is built in; choose another name"
    for header, variable in tool.headers.items():
        if not re.match(VARIABLE, variable):
            yield (
                f"headers.{header}",
                (f"must name an environment variable, e.g. BOOKING_API_KEY (got {variable!r})"),
            )
    if tool.secret_env and tool.method not in BODY_METHODS:
        yield (
            "secret_env",
            (f"the signature covers the request body; a {tool.method} request has none: use POST"),
        )
    if tool.filler and tool.filler_after_secs >= tool.timeout_secs:
        yield "filler_after_secs", f"must be less than timeout_secs ({tool.timeout_secs:g})"
