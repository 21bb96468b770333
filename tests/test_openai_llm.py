"""ClosingOpenAILLMService: streams like OpenAILLMService, then releases its HTTP client."""

from pipecat.frames.frames import LLMContextFrame, LLMTextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import run_test

from services.openai_llm import ClosingOpenAILLMService
from standins.openai_chat import OpenAIChatStandIn


async def test_it_streams_a_reply_then_closes_its_http_client_at_the_end():
    async with OpenAIChatStandIn() as stand_in:
        llm = ClosingOpenAILLMService(api_key="k", base_url=f"{stand_in.http_url}/v1")
        context = LLMContext(messages=[{"role": "user", "content": "When do you open?"}])
        down, _ = await run_test(llm, frames_to_send=[LLMContextFrame(context)], start_timeout=5)
    text = "".join(f.text for f in down if isinstance(f, LLMTextFrame))
    assert text == "We open at nine on Saturday and close at eleven."
    assert llm._client.is_closed()
