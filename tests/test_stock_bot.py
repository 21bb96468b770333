"""The stock Pipecat bot (bench/stock_bot.py) answers a simulated call on the stand-ins."""

import asyncio
from contextlib import asynccontextmanager

import uvicorn

from bench import stock_bot
from bench.stock_bot import INTRO_REQUEST, create_app
from calls import heard_matches
from server.local import free_socket
from standins.openai_replies import Reply, last_user_text, scripted_reply
from standins.script import dial

INTRO = "Hello, I am your teacher."
OPENING_REPLY = "We open at nine on Saturday and close at eleven."


def intro_or_script(messages: list[dict], tools: list[dict] | None) -> Reply:
    """The stand-in's script, plus an introduction for a request with no user message yet."""
    return scripted_reply(messages, tools) if last_user_text(messages) else Reply(text=INTRO)


class ClientKeepingOpenAILLMService(stock_bot.OpenAILLMService):
    """Stock pipecat never closes its OpenAI client; the test keeps them to close them after."""

    clients: list = []

    def create_client(self, *args, **kwargs):
        client = super().create_client(*args, **kwargs)
        self.clients.append(client)
        return client


@asynccontextmanager
async def serve_stock_bot(monkeypatch, env: dict[str, str]):
    """The stock app on a free loopback port, PUBLIC_URL pointing at it."""
    monkeypatch.setattr(stock_bot, "OpenAILLMService", ClientKeepingOpenAILLMService)
    sock = free_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for name, value in (env | {"PUBLIC_URL": url}).items():
        monkeypatch.setenv(name, value)
    app = create_app()
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), task.result()
            await asyncio.sleep(0.01)
        yield url, app
    finally:
        server.should_exit = True
        await task
        sock.close()
        while ClientKeepingOpenAILLMService.clients:
            await ClientKeepingOpenAILLMService.clients.pop().close()


async def test_the_stock_bot_greets_and_answers_on_the_standins(standins, data, monkeypatch):
    standins.openai.responder = intro_or_script
    async with serve_stock_bot(monkeypatch, standins.env()) as (url, app):
        call = await dial(url)
        greeting = await call.listen(timeout=10)
        assert heard_matches(greeting.ulaw, INTRO)
        assert app.state.calls == 1

        await call.say(data / "opening_hours.wav")
        reply = await call.listen(timeout=10)
        assert heard_matches(reply.ulaw, OPENING_REPLY)

        await call.hang_up()
        async with asyncio.timeout(5):
            while app.state.calls:
                await asyncio.sleep(0.01)

    first, last = standins.openai.requests[0].body, standins.openai.requests[-1].body
    assert {"role": "developer", "content": INTRO_REQUEST} in first["messages"]
    assert "open" in last_user_text(last["messages"]).lower()
    assert [c.query["sample_rate"] for c in standins.stt.connections] == ["8000"]
    assert standins.stt.connections[0].audio_bytes > 0
    assert [c.query["sample_rate"] for c in standins.tts.connections] == ["8000"]
    assert standins.tts.connections[0].speaks
    assert standins.twilio.hangups == []  # the caller hung up: no REST hang-up
