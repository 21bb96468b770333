"""Which declared pipelines this server can run, given the provider keys it was given."""

from loguru import logger

from pipelines.declaration import Declaration, DeclarationError
from pipelines.provider import ProviderAccess
from pipelines.routing import Routes, load_routes
from server.settings import ConfigError

_HINTS = {
    "DEEPGRAM_API_KEY": "create a key in the Deepgram console",
    "OPENAI_API_KEY": "create a key in the OpenAI dashboard; any value for a local server",
    "CARTESIA_API_KEY": "create a key in the Cartesia console",
    "ELEVENLABS_API_KEY": "create a key in the ElevenLabs dashboard (API keys)",
    "ANTHROPIC_API_KEY": "create a key in the Anthropic (Claude) console",
}


def served_pipelines(
    declarations: dict[str, Declaration], access: ProviderAccess, routes: Routes, *, warn=True
) -> set[str]:
    """The pipelines whose providers' variables are all set.

    A pipeline calls are routed to (the default, a routed number's) that lacks one stops the
    server; any other is left out with a warning, and a call that asks for it gets the default.
    """
    served, problems = set(), []
    for name, declaration in sorted(declarations.items()):
        missing = sorted(v for v in declaration.needs() if not access.get(v))
        if not missing:
            served.add(name)
            continue
        for variable in missing:
            uses = _users(declaration, variable)
            line = f"{variable} is not set ({_HINTS.get(variable, 'see .env.example')}); "
            line += f"pipeline {name!r} ({declaration.path.name}) needs it for {uses}"
            if name in routes.required:
                problems.append(f"  {line}")
            elif warn:
                logger.warning(f"{line}: calls cannot use {name!r}")
    if problems:
        raise ConfigError("\n".join(["configuration error:", *problems]))
    return served


def _users(declaration: Declaration, variable: str) -> str:
    stages = [
        f"{section}.provider {stage.provider.name!r}"
        for section, stage in declaration.stages.items()
        if variable in stage.needs()
    ]
    tools = [f"tool {tool.name!r}" for tool in declaration.tools if variable in tool.needs()]
    return ", ".join(stages + tools)


def unserved_lines(declarations: dict[str, Declaration], environ: dict[str, str]) -> list[str]:
    """The provider variables calls would lack, as `served_pipelines` words them.

    For a start-up that failed on other variables first, so one message names them all.
    """
    access = ProviderAccess({name: value for name, value in environ.items() if value})
    try:
        routes = load_routes(environ.get("PIPELINE") or "default", set(declarations))
        served_pipelines(declarations, access, routes, warn=False)
    except (ConfigError, DeclarationError) as e:
        return str(e).splitlines()[1:]
    return []
