"""The OpenAI chat stand-in, proven against the real openai SDK and pipecat's OpenAILLMService."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    FunctionCallInProgressFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMTextFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.llm_service import FunctionCallParams
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.tests.utils import SleepFrame, run_test

from standins.openai_chat import OpenAIChatStandIn, Reply, ToolCall, fixed_reply, scripted_reply
from standins.openai_replies import LONG_REPLY

KEY = "sk-test-standin"
END_CALL_TOOL = {
    "type": "function",
    "function": {"name": "end_call", "description": "Hang up.", "parameters": {"type": "object"}},
}


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def sdk(standin: OpenAIChatStandIn, api_key: str = KEY, **kwargs) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=standin.http_url + "/v1", api_key=api_key, **kwargs)


@asynccontextmanager
async def openai_llm(standin: OpenAIChatStandIn, **kwargs) -> AsyncIterator[OpenAILLMService]:
    llm = OpenAILLMService(api_key=KEY, base_url=standin.http_url + "/v1", **kwargs)
    try:
        yield llm
    finally:
        # pipecat 1.14 never closes its AsyncOpenAI client: its pooled socket would leak.
        await llm._client.close()


async def stream_chunks(client: AsyncOpenAI, text: str) -> list:
    usage = {"include_usage": True}
    stream = await client.chat.completions.create(
        model="m", messages=user(text), stream=True, stream_options=usage
    )
    return [chunk async for chunk in stream]


def contents(chunks: list) -> list[str]:
    return [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]


async def test_sdk_streams_the_scripted_answer_word_by_word_with_finish_and_usage():
    async with OpenAIChatStandIn() as standin, sdk(standin) as client:
        chunks = await stream_chunks(client, "What time do you OPEN on Saturday?")

    pieces = contents(chunks)
    assert "".join(pieces) == "We open at nine on Saturday and close at eleven."
    assert pieces[:2] == ["We ", "open "]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(pieces)
    assert standin.responses[0].completed and standin.responses[0].tokens_sent == len(pieces)


async def test_raw_stream_is_server_sent_events_ending_with_done():
    async with OpenAIChatStandIn() as standin, aiohttp.ClientSession() as session:
        body = {"model": "m", "messages": user("yes"), "stream": True}
        url, headers = standin.http_url + "/v1/chat/completions", {"Authorization": f"Bearer {KEY}"}
        async with session.post(url, json=body, headers=headers) as response:
            content_type = response.headers["Content-Type"]
            raw = await response.text()

    events = raw.split("\n\n")
    assert content_type.startswith("text/event-stream")
    assert all(event.startswith("data: ") for event in events if event)
    assert events[-2] == "data: [DONE]" and events[-1] == ""
    assert json.loads(events[0][6:])["object"] == "chat.completion.chunk"


async def test_sdk_non_streaming_gets_one_chat_completion():
    async with OpenAIChatStandIn() as standin, sdk(standin) as client:
        completion = await client.chat.completions.create(
            model="gpt-4.1-mini", messages=user("I'd like to book a table, please.")
        )

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content.startswith("Of course. A table for two")
    assert completion.choices[0].finish_reason == "stop" and completion.usage.total_tokens > 0
    assert standin.responses[0].stream is False and standin.responses[0].completed


async def test_sdk_parses_a_streamed_end_call_tool_call():
    async with OpenAIChatStandIn() as standin, sdk(standin) as client:
        bye, tools = user("Thanks, that's all. Goodbye."), [END_CALL_TOOL]
        stream = await client.chat.completions.create(
            model="m", messages=bye, tools=tools, stream=True
        )
        chunks = [chunk async for chunk in stream]

    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert calls[0].id.startswith("call_") and calls[0].type == "function"
    assert calls[0].function.name == "end_call"
    assert "".join(c.function.arguments or "" for c in calls) == "{}"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert standin.requests[0].body["tools"][0]["function"]["name"] == "end_call"


async def test_tool_call_arguments_stream_in_fragments_that_join_to_json():
    def book(messages, tools):
        return Reply(tool_calls=[ToolCall("book", {"name": "Ada Lovelace", "party": 2})])

    async with OpenAIChatStandIn(responder=book) as standin, sdk(standin) as client:
        stream = await client.chat.completions.create(model="m", messages=user("hi"), stream=True)
        chunks = [chunk async for chunk in stream]

    calls = [tc for c in chunks for tc in c.choices[0].delta.tool_calls or []]
    fragments = [call.function.arguments for call in calls]
    assert fragments[0] == "" and len(fragments) > 3
    assert json.loads("".join(fragments)) == {"name": "Ada Lovelace", "party": 2}


async def test_closing_the_sdk_stream_early_is_recorded_as_cancelled():
    standin = OpenAIChatStandIn(responder=fixed_reply(), tokens_per_second=100)
    async with standin, sdk(standin) as client:
        stream = await client.chat.completions.create(model="m", messages=user("hi"), stream=True)
        received = 0
        async for chunk in stream:
            received += bool(chunk.choices[0].delta.content)
            if received == 3:
                break
        await stream.close()
        [record] = await standin.wait_for_responses(1)

    assert record.cancelled and not record.completed
    assert 3 <= record.tokens_sent < record.tokens_planned == len(LONG_REPLY.split())


async def test_a_stream_closed_while_waiting_for_the_first_token_is_recorded_at_once():
    async with OpenAIChatStandIn(ttft=5.0) as standin, sdk(standin) as client:
        stream = await client.chat.completions.create(model="m", messages=user("hi"), stream=True)
        await stream.close()
        [record] = await standin.wait_for_responses(1, timeout=1.0)

    assert record.cancelled and record.tokens_sent == 0


async def test_a_pipecat_interruption_cancels_the_stream_mid_reply():
    standin = OpenAIChatStandIn(responder=fixed_reply(), tokens_per_second=20)
    async with standin, openai_llm(standin) as llm:
        context = LLMContext(messages=user("Tell me about tonight."))
        frames = [LLMContextFrame(context=context), SleepFrame(0.4), InterruptionFrame()]
        await run_test(llm, frames_to_send=frames)
        [record] = await standin.wait_for_responses(1, timeout=1.0)

    assert record.cancelled and 2 <= record.tokens_sent < record.tokens_planned


async def test_ttft_delays_the_first_token():
    async with OpenAIChatStandIn(ttft=0.3) as standin, sdk(standin) as client:
        started = asyncio.get_running_loop().time()
        await stream_chunks(client, "yes")
        elapsed = asyncio.get_running_loop().time() - started

    assert elapsed >= 0.3


async def test_missing_or_wrong_key_is_refused_with_an_openai_error():
    async with OpenAIChatStandIn(api_key=KEY) as standin:
        async with sdk(standin, api_key="sk-wrong") as client:
            with pytest.raises(openai.AuthenticationError) as caught:
                await client.chat.completions.create(model="m", messages=user("hi"))
        async with aiohttp.ClientSession() as session:
            async with session.post(standin.http_url + "/v1/chat/completions", json={}) as response:
                status, body = response.status, await response.json()

    assert caught.value.code == "invalid_api_key"
    assert standin.requests[0].authorization == "Bearer sk-wrong"
    assert status == 401 and body["error"]["type"] == "invalid_request_error"


async def test_fail_next_answers_500_then_recovers():
    async with OpenAIChatStandIn(fail_next=1) as standin, sdk(standin, max_retries=0) as client:
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="m", messages=user("yes"))
        completion = await client.chat.completions.create(model="m", messages=user("yes"))

    assert completion.choices[0].message.content == "Great, you're all set."
    assert [r.status for r in standin.requests] == [500, 200]


async def test_models_are_listed_for_clients_that_probe():
    async with OpenAIChatStandIn() as standin, sdk(standin) as client:
        assert [model.id async for model in client.models.list()] == ["gpt-4.1-mini"]


def test_scripted_receptionist_follows_the_last_user_message():
    said = [
        {"role": "user", "content": "Actually, cancel that."},
        {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": [{"type": "text", "text": "Yes, that works."}]},
    ]
    assert scripted_reply(said, None).text == "Great, you're all set."
    assert scripted_reply(user("Thanks, that\u2019s all."), None).text == "Goodbye!"
    assert scripted_reply(user("goodbye"), [END_CALL_TOOL]).tool_calls == [ToolCall("end_call")]
    assert scripted_reply([], None).text == "Sorry, could you say that again?"
    assert scripted_reply(user("What's the weather?"), None).text.startswith("Sorry")


async def test_pipecat_openai_llm_service_streams_llm_text_frames():
    settings = OpenAILLMService.Settings(system_instruction="You are a receptionist.")
    async with OpenAIChatStandIn() as standin, openai_llm(standin, settings=settings) as llm:
        context = LLMContext(messages=user("Hi, I'd like to book a table for two tomorrow."))
        down, _ = await run_test(llm, frames_to_send=[LLMContextFrame(context=context)])

    text = "".join(f.text for f in down if isinstance(f, LLMTextFrame))
    assert text.startswith("Of course. A table for two") and text.endswith("for the booking?")
    body = standin.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"][0] == {"role": "system", "content": "You are a receptionist."}


async def test_pipecat_runs_the_end_call_function_the_stand_in_calls():
    called = asyncio.Event()

    async def end_call(params: FunctionCallParams):
        called.set()
        await params.result_callback({"ended": True})

    async with OpenAIChatStandIn() as standin, openai_llm(standin) as llm:
        llm.register_function("end_call", end_call)
        schema = FunctionSchema("end_call", "Hang up.", properties={}, required=[])
        context = LLMContext(user("Thanks, that's all. Goodbye."), tools=ToolsSchema([schema]))
        down, _ = await run_test(llm, frames_to_send=[LLMContextFrame(context=context)])

    assert called.is_set()
    assert any(isinstance(f, FunctionCallInProgressFrame) for f in down)
