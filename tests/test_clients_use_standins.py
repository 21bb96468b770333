"""Every client the bot builds talks to the stand-ins, never to Deepgram, OpenAI or Twilio."""

from pipelines.build import make_service
from pipelines.declaration import load_declarations
from pipelines.provider import ProviderAccess
from standins.script import dial
from standins.stack import ACCOUNT_SID, DEEPGRAM_KEY, OPENAI_KEY


async def test_a_call_reaches_each_standin_with_the_configured_credentials(bot, standins, data):
    call = await dial(bot.url)
    await call.listen()
    await call.say(data / "goodbye.wav")
    await call.wait_closed(timeout=15)
    assert await standins.twilio.wait_for_hangup(call.call_sid, timeout=5)

    (stt,) = standins.stt.connections
    assert stt.authorization == f"Token {DEEPGRAM_KEY}"
    assert stt.query["encoding"] == "linear16" and stt.query["sample_rate"] == "8000"
    assert stt.query["model"] == "nova-3-general" and stt.query["language"] == "en"
    voices = [tts.query["model"] for tts in standins.tts.connections]
    # Each pipeline's greeting is synthesized at start-up; then the call's own connection.
    assert sorted(voices) == ["aura-2-celeste-es", "aura-2-thalia-en", "aura-2-thalia-en"]
    for tts in standins.tts.connections:
        assert tts.authorization == f"Token {DEEPGRAM_KEY}"
        assert tts.query["encoding"] == "linear16" and tts.query["sample_rate"] == "8000"
    assert standins.openai.requests
    for request in standins.openai.requests:
        assert request.authorization == f"Bearer {OPENAI_KEY}"
        assert request.body["model"] == "gpt-4.1-mini"
        tools = [t["function"]["name"] for t in request.body["tools"]]
        assert tools == ["end_call", "transfer_call"]
    (hangup,) = [r for r in standins.twilio.requests if r.form.get("Status") == "completed"]
    assert hangup.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call.call_sid}.json"
    assert hangup.auth_ok


def test_provider_clients_keep_the_configured_base_urls():
    declaration = load_declarations()["default"]
    access = ProviderAccess(
        {
            "DEEPGRAM_API_KEY": "dg",
            "DEEPGRAM_BASE_URL": "ws://127.0.0.1:9",
            "OPENAI_API_KEY": "sk",
            "OPENAI_BASE_URL": "http://127.0.0.1:8/v1",
        }
    )
    stt = make_service(declaration.stt, declaration, access)
    assert stt.url.startswith("ws://127.0.0.1:9/v1/listen?")  # no silent fallback to Deepgram
    assert make_service(declaration.tts, declaration, access)._base_url == "ws://127.0.0.1:9"
    llm = make_service(declaration.llm, declaration, access)
    assert str(llm._client.base_url) == "http://127.0.0.1:8/v1/"
