"""Runs a declared HTTP tool for the LLM; says its filler line once if the call is slow."""

import asyncio

from pipecat.frames.frames import TTSSpeakFrame
from pipecat.services.llm_service import FunctionCallParams

from pipelines.provider import ProviderAccess
from pipelines.tools import HttpTool
from server.http_tool import call_tool


class HttpToolHandler:
    """A function handler (`register_function`) for one `[[tools]]` entry.

    Register it with `cancel_on_interruption=False`: a caller who talks over the bot while the
    request runs does not cancel it, and its result still reaches the context (pipecat adds a
    result that comes after the conversation moved on as a message of its own).

    | the request…                        | the bot                                        |
    |-------------------------------------|------------------------------------------------|
    | answers within `filler_after_secs`  | answers from the result                        |
    | takes longer                        | says `filler` (TTSSpeakFrame ↓), then answers  |
    | fails, times out, is refused        | gets `{"error": …}` as the result, answers     |
    """

    def __init__(self, tool: HttpTool, access: ProviderAccess):
        """Call `tool` with the variables its headers and signature name, from `access`."""
        self._tool = tool
        self._access = access

    async def __call__(self, params: FunctionCallParams) -> None:
        """Make the request; the filler if it is slow; the result back to the LLM."""
        request = params.llm.create_task(
            call_tool(self._tool, params.arguments, self._access), f"tool {self._tool.name}"
        )
        try:
            done, _ = await asyncio.wait({request}, timeout=self._tool.filler_after_secs)
            if not done and self._tool.filler:
                await params.llm.push_frame(TTSSpeakFrame(self._tool.filler))
            result = await request
        finally:
            if not request.done():  # the call ended while the request ran
                await params.llm.cancel_task(request)
        await params.result_callback(result)
