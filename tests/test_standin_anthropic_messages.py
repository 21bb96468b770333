"""The Anthropic stand-in, proven against the anthropic SDK and pipecat's AnthropicLLMService."""

import json

import aiohttp
import anthropic
import pytest
from anthropic import AsyncAnthropic
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    ErrorFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.services.anthropic.llm import AnthropicLLMService
from pipecat.services.llm_service import FunctionCallParams
from pipecat.tests.utils import SleepFrame, run_test

from pipelines.build import END_CALL
from standins.anthropic_messages import AnthropicMessagesStandIn, scripted_reply, user_text
from standins.openai_replies import LONG_REPLY, Reply, ToolCall, fixed_reply
from standins.script import BOOK_TABLE, BOOKING_REPLY

KEY = "sk-ant-test-standin"
END_CALL_TOOL = {"name": "end_call", "description": "Hang up.", "input_schema": {"type": "object"}}


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def sdk(standin: AnthropicMessagesStandIn, api_key: str = KEY, **kwargs) -> AsyncAnthropic:
    return AsyncAnthropic(base_url=standin.http_url, api_key=api_key, **kwargs)


async def create(client: AsyncAnthropic, messages: list[dict], **kwargs):
    return await client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=kwargs.pop("max_tokens", 256),
        messages=messages,
        **kwargs,
    )


async def test_sdk_streams_the_scripted_answer_as_anthropic_events():
    async with AnthropicMessagesStandIn() as standin, sdk(standin) as client:
        stream = await create(client, user(BOOK_TABLE), stream=True)
        events = [event async for event in stream]

    kinds = [event.type for event in events]
    deltas = [e.delta.text for e in events if e.type == "content_block_delta"]
    assert kinds[:2] == ["message_start", "content_block_start"]  # the SDK drops the ping
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert "".join(deltas) == BOOKING_REPLY and deltas[:2] == ["Of ", "course. "]
    assert events[0].message.role == "assistant" and events[0].message.content == []
    assert events[1].content_block.type == "text" and events[1].content_block.text == ""
    assert events[-2].delta.stop_reason == "end_turn"
    assert events[-2].usage.output_tokens == len(deltas) and events[0].message.usage.input_tokens
    (record,) = standin.responses
    assert record.completed and record.tokens_sent == len(deltas)
    (request,) = standin.requests
    assert (request.api_key, request.version) == (KEY, "2023-06-01")


async def test_the_raw_stream_is_named_server_sent_events():
    async with AnthropicMessagesStandIn() as standin, aiohttp.ClientSession() as http:
        body = {"model": "m", "max_tokens": 64, "messages": user("yes"), "stream": True}
        headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
        async with http.post(f"{standin.http_url}/v1/messages", json=body, headers=headers) as r:
            content_type, request_id, raw = r.content_type, r.headers["request-id"], await r.text()

    events = [event for event in raw.split("\n\n") if event]
    assert content_type == "text/event-stream" and request_id.startswith("req_")
    names = [event.split("\n")[0] for event in events]
    assert names[:3] == ["event: message_start", "event: content_block_start", "event: ping"]
    for event in events:
        name, data = event.split("\n")
        assert name == f"event: {json.loads(data.removeprefix('data: '))['type']}"
    assert events[-1] == 'event: message_stop\ndata: {"type": "message_stop"}'


async def test_the_sdk_stream_helper_builds_the_final_message():
    async with AnthropicMessagesStandIn() as standin, sdk(standin) as client:
        async with client.messages.stream(
            model="claude-haiku-4-5", max_tokens=256, messages=user("What time do you open?")
        ) as stream:
            message = await stream.get_final_message()

    assert message.content[0].text == "We open at nine on Saturday and close at eleven."
    assert message.stop_reason == "end_turn" and message.id.startswith("msg_")


async def test_a_goodbye_with_end_call_offered_streams_a_tool_use_block():
    async with AnthropicMessagesStandIn() as standin, sdk(standin) as client:
        async with client.messages.stream(
            model="m",
            max_tokens=256,
            messages=user("Thanks, that's all. Goodbye."),
            tools=[END_CALL_TOOL],
        ) as stream:
            events = [event async for event in stream]
            message = await stream.get_final_message()

    (block,) = message.content
    assert (block.type, block.name, block.input) == ("tool_use", "end_call", {})
    assert block.id.startswith("toolu_") and message.stop_reason == "tool_use"
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    assert [(d.type, d.partial_json) for d in deltas] == [("input_json_delta", "")]
    assert standin.requests[0].tools == [END_CALL_TOOL]


async def test_tool_input_streams_in_fragments_that_join_to_json():
    def book(messages, tools):
        return Reply(
            text="Booking it. ", tool_calls=[ToolCall("book", {"name": "Ada", "party": 2})]
        )

    async with AnthropicMessagesStandIn(responder=book) as standin, sdk(standin) as client:
        async with client.messages.stream(model="m", max_tokens=99, messages=user("hi")) as stream:
            events = [event async for event in stream]
            message = await stream.get_final_message()

    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    fragments = [d.partial_json for d in deltas if d.type == "input_json_delta"]
    assert fragments[0] == "" and len(fragments) > 3
    assert json.loads("".join(fragments)) == {"name": "Ada", "party": 2}
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[1].input == {"name": "Ada", "party": 2}


async def test_a_tool_use_must_be_answered_by_a_tool_result_in_the_next_message():
    tool_use = {"type": "tool_use", "id": "toolu_1", "name": "end_call", "input": {}}
    history = [*user("Goodbye."), {"role": "assistant", "content": [tool_use]}]
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ended"}
    async with AnthropicMessagesStandIn() as standin, sdk(standin, max_retries=0) as client:
        with pytest.raises(anthropic.BadRequestError) as refused:
            await create(client, [*history, *user("Hello?")])
        answered = await create(client, [*history, {"role": "user", "content": [result]}])

    assert refused.value.status_code == 400
    assert refused.value.body["error"]["type"] == "invalid_request_error"
    assert "`tool_use` ids were found without `tool_result` blocks" in str(refused.value)
    # The script still hears "Goodbye."; no tools are offered this time.
    assert answered.content[0].text == "Goodbye!" and answered.stop_reason == "end_turn"
    assert [r.status for r in standin.requests] == [400, 200]


async def test_a_request_without_streaming_gets_one_message():
    async with AnthropicMessagesStandIn() as standin, sdk(standin) as client:
        message = await create(client, user(BOOK_TABLE))

    assert message.type == "message" and message.content[0].text == BOOKING_REPLY
    assert message.usage.output_tokens == len(BOOKING_REPLY.split())
    assert standin.responses[0].stream is False


async def test_max_tokens_cuts_the_reply_and_says_so():
    async with AnthropicMessagesStandIn() as standin, sdk(standin) as client:
        message = await create(client, user(BOOK_TABLE), max_tokens=3)

    assert message.content[0].text == "Of course. A " and message.stop_reason == "max_tokens"


async def test_a_wrong_key_or_no_version_gets_anthropics_error_body():
    async with AnthropicMessagesStandIn(api_key=KEY) as standin:
        async with sdk(standin, api_key="sk-ant-wrong", max_retries=0) as client:
            with pytest.raises(anthropic.AuthenticationError) as caught:
                await create(client, user("hi"))
        async with aiohttp.ClientSession() as http:
            body = {"model": "m", "max_tokens": 9, "messages": user("hi")}
            url, headers = f"{standin.http_url}/v1/messages", {"x-api-key": KEY}
            async with http.post(url, json=body, headers=headers) as response:
                status, error = response.status, await response.json()

    assert caught.value.status_code == 401
    assert caught.value.body["error"] == {
        "type": "authentication_error",
        "message": "invalid x-api-key",
    }
    assert caught.value.body["type"] == "error" and caught.value.request_id.startswith("req_")
    assert status == 400 and error["error"]["message"] == "anthropic-version: header is required"


async def test_fail_next_answers_overloaded_then_recovers():
    async with AnthropicMessagesStandIn(fail_next=1) as standin, sdk(standin, max_retries=0) as c:
        with pytest.raises(anthropic.OverloadedError):
            await create(c, user("yes"))
        message = await create(c, user("yes"))

    assert message.content[0].text == "Great, you're all set."
    assert [r.status for r in standin.requests] == [529, 200]


async def test_closing_the_stream_early_is_recorded_as_cancelled():
    standin = AnthropicMessagesStandIn(responder=fixed_reply(), tokens_per_second=100)
    async with standin, sdk(standin) as client:
        stream = await create(client, user("hi"), stream=True)
        deltas = 0
        async for event in stream:
            deltas += event.type == "content_block_delta"
            if deltas == 3:
                break
        await stream.close()
        (record,) = await standin.wait_for_responses(1)

    assert record.cancelled and not record.completed
    assert 3 <= record.tokens_sent < record.tokens_planned == len(LONG_REPLY.split())


def test_the_script_hears_the_users_last_words_not_tool_results():
    said = [
        *user("Actually, cancel that."),
        {"role": "assistant", "content": [{"type": "text", "text": "Sure."}]},
        {"role": "user", "content": [{"type": "text", "text": "Yes, that works."}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t", "name": "x", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
    ]
    assert user_text(said) == "Yes, that works."
    assert scripted_reply(said, None).text == "Great, you're all set."
    assert scripted_reply(user("Goodbye"), [END_CALL_TOOL]).tool_calls == [ToolCall("end_call")]
    assert scripted_reply(user("Goodbye"), None).text == "Goodbye!"


# pipecat's AnthropicLLMService, built as pipelines/providers/anthropic.py builds it.


def claude(client: AsyncAnthropic, **settings) -> AnthropicLLMService:
    settings = {"model": "claude-haiku-4-5", **settings}
    return AnthropicLLMService(
        api_key=KEY, client=client, settings=AnthropicLLMService.Settings(**settings)
    )


async def test_pipecat_anthropic_streams_the_reply_with_the_system_prompt_and_tools():
    async with AnthropicMessagesStandIn() as standin, sdk(standin) as client:
        llm = claude(client, system_instruction="You are Luigi's receptionist.", temperature=0.3)
        context = LLMContext(user(BOOK_TABLE), tools=ToolsSchema(standard_tools=[END_CALL]))
        down, up = await run_test(llm, frames_to_send=[LLMContextFrame(context=context)])

    kinds = [type(f) for f in down if isinstance(f, (LLMFullResponseStartFrame, LLMTextFrame))]
    assert kinds[0] is LLMFullResponseStartFrame and isinstance(down[-1], LLMFullResponseEndFrame)
    assert "".join(f.text for f in down if isinstance(f, LLMTextFrame)) == BOOKING_REPLY
    assert not [f for f in up if isinstance(f, ErrorFrame)]
    (request,) = standin.requests
    assert request.system == "You are Luigi's receptionist."
    assert request.messages == user(BOOK_TABLE)
    assert request.tools == [
        {
            "name": "end_call",
            "description": END_CALL.description,
            "input_schema": {"type": "object", "properties": {}, "required": []},
        }
    ]
    body = request.body
    assert (body["model"], body["stream"], body["temperature"]) == ("claude-haiku-4-5", True, 0.3)
    assert body["max_tokens"] == 4096 and body["thinking"] == {"type": "disabled"}
    assert request.path == "/v1/messages" and request.query == "beta=true"
    assert request.beta == "interleaved-thinking-2025-05-14"


async def test_pipecat_calls_end_call_and_the_follow_up_carries_its_tool_result():
    calls: list[FunctionCallParams] = []

    async def end_call(params: FunctionCallParams):
        calls.append(params)
        await params.result_callback({"ended": True})

    def script(messages, tools):  # after the tool result, say goodbye in words
        last = messages[-1]["content"]
        if isinstance(last, list) and last[0].get("type") == "tool_result":
            return Reply(text="Goodbye!")
        return scripted_reply(messages, tools)

    async with AnthropicMessagesStandIn(responder=script) as standin, sdk(standin) as client:
        llm = claude(client)
        llm.register_function("end_call", end_call)
        context = LLMContext(user("Thanks, that's all. Goodbye."), tools=ToolsSchema([END_CALL]))
        # The assistant aggregator records the call and its result, then runs the LLM again.
        pipeline = Pipeline([llm, LLMContextAggregatorPair(context).assistant()])
        frames = [LLMContextFrame(context=context), SleepFrame(0.5)]
        await run_test(pipeline, frames_to_send=frames)

    (call,) = calls
    assert (call.function_name, call.arguments) == ("end_call", {})
    first, follow_up = standin.requests
    assert first.status == follow_up.status == 200
    tool_use = follow_up.messages[-2]["content"][0]
    assert (follow_up.messages[-2]["role"], tool_use["type"]) == ("assistant", "tool_use")
    assert tool_use["id"] == call.tool_call_id and tool_use["name"] == "end_call"
    result = follow_up.messages[-1]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == tool_use["id"]
    assert json.loads(result["content"]) == {"ended": True}
    assert context.get_messages()[-1] == {"role": "assistant", "content": "Goodbye!"}


async def test_a_pipecat_interruption_cancels_the_stream_mid_reply():
    standin = AnthropicMessagesStandIn(responder=fixed_reply(), tokens_per_second=20)
    async with standin, sdk(standin) as client:
        context = LLMContext(user("Tell me about tonight."))
        frames = [LLMContextFrame(context=context), SleepFrame(0.4), InterruptionFrame()]
        await run_test(claude(client), frames_to_send=frames)
        (record,) = await standin.wait_for_responses(1, timeout=1.0)

    assert record.cancelled and 2 <= record.tokens_sent < record.tokens_planned


async def test_pipecat_reports_a_wrong_key_as_an_error():
    async with (
        AnthropicMessagesStandIn(api_key=KEY) as standin,
        sdk(standin, api_key="sk-ant-wrong", max_retries=0) as client,
    ):
        context = LLMContext(user(BOOK_TABLE))
        down, up = await run_test(claude(client), frames_to_send=[LLMContextFrame(context=context)])

    (error,) = [f for f in up if isinstance(f, ErrorFrame)]
    assert "401" in error.error and "invalid x-api-key" in error.error
    assert not [f for f in down if isinstance(f, LLMTextFrame)]
