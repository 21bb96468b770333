"""One call of a declared HTTP tool: the signed request, and its answer as a result for the LLM.

A failure never raises: a timeout, a refused connection or an HTTP error becomes a result that
says what happened (`{"error": …}`), for the LLM to tell the caller.
"""

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from loguru import logger

from pipelines.provider import ProviderAccess
from pipelines.tools import BODY_METHODS, HttpTool
from services.tls import shared_tls

SIGNATURE_HEADER = "X-Bot-Signature"  # "sha256=" + hex HMAC-SHA256 of the body
MAX_ANSWER_CHARS = 4000  # of an answer that is not JSON, or of an error's body, for the LLM


@dataclass(frozen=True)
class ToolRequest:
    """An HTTP request ready to send."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


def signature(secret: str, body: bytes) -> str:
    """The `X-Bot-Signature` of `body`: `sha256=` and the hex HMAC-SHA256 keyed by `secret`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def fill_url(template: str, arguments: Mapping[str, Any]) -> str:
    """`template` with each `{name}` replaced by its argument, URL-encoded (`/` too)."""
    for name, value in arguments.items():
        text = json.dumps(value) if isinstance(value, (bool, dict, list)) else str(value)
        template = template.replace(f"{{{name}}}", quote(text, safe=""))
    return template


def build_request(
    tool: HttpTool, arguments: Mapping[str, Any], access: ProviderAccess
) -> ToolRequest:
    """The request one call of `tool` makes; raises `MissingVariable` for an unset variable."""
    headers = {header: access[variable] for header, variable in tool.headers.items()}
    body = None
    if tool.method in BODY_METHODS:
        body = json.dumps(dict(arguments), separators=(",", ":"), ensure_ascii=False).encode()
        headers["Content-Type"] = "application/json"
        if tool.secret_env:
            headers[SIGNATURE_HEADER] = signature(access[tool.secret_env], body)
    return ToolRequest(tool.method, fill_url(tool.url, arguments), headers, body)


async def call_tool(tool: HttpTool, arguments: Mapping[str, Any], access: ProviderAccess) -> Any:
    """Call `tool` with the LLM's `arguments`; its JSON answer, or what went wrong."""
    missing = [name for name in tool.parameters.required if name not in arguments]
    if missing:
        return {"error": f"missing argument(s): {', '.join(missing)}; ask the caller"}
    request = build_request(tool, arguments, access)
    timeout = aiohttp.ClientTimeout(total=tool.timeout_secs)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                ssl=shared_tls(),
                allow_redirects=False,
            ) as response,
        ):
            text = await response.text(errors="replace")
            status = response.status
    except TimeoutError:
        return _failed(tool, f"the service did not answer within {tool.timeout_secs:g} s")
    except aiohttp.ClientError as e:
        logger.debug(f"tool {tool.name!r}: {e!r}")
        return _failed(tool, "the service could not be reached", type(e).__name__)
    if status >= 400:
        return _failed(tool, f"the service answered HTTP {status}", text[:MAX_ANSWER_CHARS])
    return _answer(text, status)


def _answer(text: str, status: int) -> Any:
    try:
        answer = json.loads(text) if text.strip() else {"status": status}
    except ValueError:
        return {"status": status, "text": text[:MAX_ANSWER_CHARS]}
    if len(text) > MAX_ANSWER_CHARS:  # a whole document would swamp the context
        return {"status": status, "text": text[:MAX_ANSWER_CHARS], "truncated": True}
    return answer


def _failed(tool: HttpTool, what: str, detail: str = "") -> dict:
    logger.warning(f"tool {tool.name!r} failed: {what}" + (f" ({detail[:200]})" if detail else ""))
    result = {"error": f"{what}; tell the caller it could not be done right now"}
    return result | ({"detail": detail} if detail else {})
