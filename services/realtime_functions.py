"""The function calls of an OpenAI Realtime session: pipecat runs them, OpenAI gets their output."""

import json

from loguru import logger
from pipecat.frames.frames import FunctionCallFromLLM, FunctionCallResultFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.openai.realtime import events


class FunctionCalls:
    """Calls as OpenAI announces them, and their results as the items that answer them.

    A call's name comes with its item (`conversation.item.added`), its arguments later
    (`response.function_call_arguments.done`). A result answers the call; whether a response
    follows is the assistant aggregator's call (it pushes the context upstream when it does).
    """

    def __init__(self) -> None:
        """No calls yet."""
        self._names: dict[str, str] = {}  # by call id, until its arguments are done
        self.unanswered = False  # a result went to OpenAI that no response has taken in

    def announced(self, item: events.ConversationItem) -> None:
        """An item was added to the conversation: note it if it is a function call."""
        if item.type == "function_call" and item.call_id and item.name:
            self._names[item.call_id] = item.name

    def call(
        self, event: events.ResponseFunctionCallArgumentsDone, context: LLMContext | None
    ) -> FunctionCallFromLLM | None:
        """The call whose arguments are done, for pipecat to run (None if never announced)."""
        name = self._names.pop(event.call_id, None)
        if name is None:
            logger.warning(f"OpenAI Realtime: arguments of an unknown call {event.call_id}")
            return None
        try:
            arguments = json.loads(event.arguments or "{}")
        except ValueError:
            logger.warning(f"OpenAI Realtime: {name} called with arguments that are not JSON")
            arguments = {}
        return FunctionCallFromLLM(
            function_name=name, tool_call_id=event.call_id, arguments=arguments, context=context
        )

    def output(self, frame: FunctionCallResultFrame) -> events.ConversationItemCreateEvent | None:
        """The item that answers the call with its final result (None for a progress report)."""
        if frame.properties and frame.properties.is_final is False:
            return None  # the API takes one output per call
        self.unanswered = True
        result = json.dumps(frame.result, ensure_ascii=False) if frame.result else "COMPLETED"
        item = events.ConversationItem(
            type="function_call_output", call_id=frame.tool_call_id, output=result
        )
        return events.ConversationItemCreateEvent(item=item)
