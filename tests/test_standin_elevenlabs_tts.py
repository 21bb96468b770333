"""The ElevenLabs TTS stand-in speaks the multi-context protocol to raw sockets and to pipecat."""

import asyncio
import base64
import json

import aiohttp
import pytest
from pipecat.frames.frames import (
    ErrorFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
from pipecat.tests.utils import SleepFrame, run_test

from standins.elevenlabs_tts import (
    INVALID_KEY,
    TOO_MANY_CONTEXTS,
    VOICE_SETTINGS_CHANGED,
    ElevenLabsTTSStandIn,
)
from standins.speech import synthesize

KEY = "test-key"
QUERY = "model_id=eleven_flash_v2_5&output_format=pcm_8000&auto_mode=true"
GREETING = "Hello there. How are you?"
LONG = "We also have a vegetarian risotto with wild mushrooms that our regulars love."


async def connect(http, stand_in, query=QUERY, headers=None) -> aiohttp.ClientWebSocketResponse:
    url = f"{stand_in.ws_url}/v1/text-to-speech/voice-1/multi-stream-input?{query}"
    return await http.ws_connect(url, headers={"xi-api-key": KEY} if headers is None else headers)


async def send(ws, **message) -> None:
    await ws.send_str(json.dumps(message))


async def until_final(ws, timeout: float = 3.0) -> list[dict]:
    """Every message up to and including the first isFinal."""
    messages = []
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads((await ws.receive()).data)
            messages.append(message)
            if message.get("isFinal") is True:
                return messages


def audio_of(messages: list[dict]) -> bytes:
    return b"".join(base64.b64decode(m["audio"]) for m in messages if m.get("audio"))


def word_starts(messages: list[dict]) -> list[tuple[str, int]]:
    """Each word and where its audio starts (ms), read from the alignments of the messages.

    Times in an alignment are relative to its own message's audio, which it spans exactly.
    """
    words, offset, word, start = [], 0, "", 0
    for message in messages:
        if not message.get("audio"):
            continue
        alignment = message["alignment"]
        times = zip(alignment["charStartTimesMs"], alignment["charDurationsMs"], strict=True)
        for char, (at, _duration) in zip(alignment["chars"], times, strict=True):
            if char.isspace():
                if word:
                    words.append((word, start))
                word = ""
            else:
                start = start if word else offset + at
                word += char
        offset += alignment["charStartTimesMs"][-1] + alignment["charDurationsMs"][-1]
    return words


async def test_a_context_streams_aligned_pcm_in_several_messages_then_is_final():
    async with ElevenLabsTTSStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in)
        await send(ws, text=" ", context_id="ctx-1", voice_settings={"speed": 1.1})
        await send(ws, text="Hello there. ", context_id="ctx-1")
        await send(ws, text="How are you? ", context_id="ctx-1")
        await send(ws, context_id="ctx-1", flush=True)
        await send(ws, context_id="ctx-1", close_context=True)
        messages = await until_final(ws)

    speech = synthesize(GREETING)
    assert audio_of(messages) == speech.pcm
    audio = messages[:-1]
    assert len(audio) >= 2 * len(speech.words), "several messages per sentence"
    assert {m["contextId"] for m in messages} == {"ctx-1"}
    assert messages[-1] == {"isFinal": True, "contextId": "ctx-1"}
    for message in audio:
        alignment = message["alignment"]
        span = alignment["charStartTimesMs"][-1] + alignment["charDurationsMs"][-1]
        assert len(base64.b64decode(message["audio"])) == span * 16, "8 kHz, 16-bit"
        assert alignment["charStartTimesMs"][0] == 0 and message["isFinal"] is None
    assert word_starts(messages) == [(w.word, round(w.start_s * 1000)) for w in speech.words]
    (conn,) = stand_in.connections
    (ctx,) = conn.contexts
    assert (conn.voice_id, conn.api_key) == ("voice-1", KEY)
    assert conn.query["output_format"] == "pcm_8000"
    assert ctx.text == " Hello there. How are you? " and ctx.voice_settings == {"speed": 1.1}
    assert ctx.words == [(w.word, w.start_s) for w in speech.words]
    assert ctx.final and not ctx.cut and conn.finals == ["ctx-1"]


async def test_a_word_split_across_messages_is_aligned_across_them():
    async with ElevenLabsTTSStandIn(chunk_ms=40) as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in)
        await send(ws, text="Wonderful. ", context_id="c", flush=True)
        await send(ws, context_id="c", close_context=True)
        messages = await until_final(ws)

    chars = [m["alignment"]["chars"] for m in messages if m.get("audio")]
    assert len(chars) > 3 and chars[0] != list("Wonderful.")
    assert word_starts(messages) == [("Wonderful.", 0)]


async def test_closing_a_context_that_was_not_flushed_cuts_its_speech_short():
    full = len(synthesize(LONG).pcm)
    async with (
        ElevenLabsTTSStandIn(realtime_factor=1.0) as stand_in,
        aiohttp.ClientSession() as http,
    ):
        ws = await connect(http, stand_in)
        await send(ws, text=LONG + " ", context_id="ctx-1")
        await asyncio.sleep(0.5)
        await send(ws, context_id="ctx-1", close_context=True)
        messages = await until_final(ws, timeout=1.0)

    (ctx,) = stand_in.contexts
    assert ctx.closed and ctx.cut and ctx.final and messages[-1]["isFinal"] is True
    heard = audio_of(messages)
    assert 0 < len(heard) == ctx.audio_bytes < full and heard == synthesize(LONG).pcm[: len(heard)]


async def test_a_flushed_context_is_spoken_to_its_end_before_is_final():
    async with (
        ElevenLabsTTSStandIn(realtime_factor=4.0) as stand_in,
        aiohttp.ClientSession() as http,
    ):
        ws = await connect(http, stand_in)
        await send(ws, text=LONG + " ", context_id="ctx-1", flush=True)
        await send(ws, context_id="ctx-1", close_context=True)
        messages = await until_final(ws, timeout=5.0)

    assert audio_of(messages) == synthesize(LONG).pcm
    assert not stand_in.contexts[0].cut


async def test_without_auto_mode_text_waits_for_the_schedule_or_a_flush():
    query = "model_id=eleven_flash_v2_5&output_format=pcm_16000"
    async with ElevenLabsTTSStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in, query)
        await send(ws, text=" ", context_id="c", generation_config={"chunk_length_schedule": [50]})
        await send(ws, text="Hello there. ", context_id="c")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await ws.receive()  # 13 characters: under the 50 of the schedule
        await send(ws, text="That is all", context_id="c", flush=True)
        await send(ws, context_id="c", close_context=True)
        messages = await until_final(ws)

    assert audio_of(messages) == synthesize("Hello there. That is all", 16000).pcm
    assert [w for w, _ in word_starts(messages)] == ["Hello", "there.", "That", "is"]
    assert stand_in.contexts[0].words[-1][0] == "all"  # no space after it: pipecat never sees it


async def test_contexts_are_independent_and_a_closed_id_opens_afresh():
    async with ElevenLabsTTSStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in)
        for context_id, text in (("a", "Hello there. "), ("b", "How are you? ")):
            await send(ws, text=text, context_id=context_id, flush=True)
            await send(ws, context_id=context_id, close_context=True)
            await until_final(ws)
        await send(ws, text="Again. ", context_id="a", flush=True)
        await send(ws, context_id="a", close_context=True)
        await until_final(ws)

    conn = stand_in.connections[0]
    assert [(c.context_id, c.text) for c in conn.contexts] == [
        ("a", "Hello there. "),
        ("b", "How are you? "),
        ("a", "Again. "),
    ]
    assert conn.finals == ["a", "b", "a"] and conn.context("a").text == "Again. "


async def test_a_keep_alive_is_recorded_and_an_idle_context_closes_after_the_timeout():
    query = QUERY + "&inactivity_timeout=1"
    async with ElevenLabsTTSStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in, query)
        await send(ws, text="")
        await send(ws, text=" ", context_id="idle")
        messages = await until_final(ws, timeout=2.5)

    assert messages == [{"isFinal": True, "contextId": "idle"}]
    assert stand_in.connections[0].keepalives == 1 and stand_in.contexts[0].closed


async def test_close_socket_speaks_flushed_contexts_then_closes_the_connection():
    async with ElevenLabsTTSStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in)
        await send(ws, text="Hello there. ", context_id="c", flush=True)
        await send(ws, close_socket=True)
        received = [message async for message in ws]

    data = [json.loads(m.data) for m in received if m.type == aiohttp.WSMsgType.TEXT]
    assert audio_of(data) == synthesize("Hello there.").pcm and data[-1]["isFinal"] is True
    assert ws.close_code == 1000 and stand_in.connections[0].closed


@pytest.mark.parametrize(
    ("headers", "first"),
    [({"xi-api-key": "wrong"}, {"text": " ", "context_id": "c"}), ({}, {"text": " "})],
)
async def test_a_wrong_or_missing_key_opens_the_socket_then_closes_it_with_1008(headers, first):
    async with ElevenLabsTTSStandIn(api_key=KEY) as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in, headers=headers)
        await send(ws, **first)
        error = json.loads((await ws.receive()).data)
        closing = await ws.receive()

    assert error == {"message": INVALID_KEY, "error": "invalid_api_key", "code": 1008}
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1008
    assert closing.extra == INVALID_KEY and stand_in.connections[0].close_code == 1008


async def test_the_key_may_come_in_the_first_message_instead_of_the_header():
    async with ElevenLabsTTSStandIn(api_key=KEY) as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in, headers={})
        await send(ws, text="Hi. ", context_id="c", xi_api_key=KEY, flush=True)
        await send(ws, context_id="c", close_context=True)
        messages = await until_final(ws)

    assert audio_of(messages) == synthesize("Hi.").pcm and stand_in.connections[0].api_key == KEY


@pytest.mark.parametrize(
    ("query", "status"),
    [("model_id=eleven_v3&output_format=pcm_8000", 403), ("model_id=eleven_flash_v2_5", 400)],
)
async def test_eleven_v3_and_an_encoded_format_are_refused_at_the_upgrade(query, status):
    async with ElevenLabsTTSStandIn() as stand_in, aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await connect(http, stand_in, query)
    assert refused.value.status == status and stand_in.refused == [status]


async def test_a_sixth_open_context_closes_the_socket_with_1008():
    async with ElevenLabsTTSStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in)
        for n in range(6):
            await send(ws, text=" ", context_id=f"c{n}")
        error = json.loads((await ws.receive()).data)
        closing = await ws.receive()

    assert error["error"] == "max_active_conversations" and error["message"] == TOO_MANY_CONTEXTS
    assert (closing.data, closing.extra) == (1008, TOO_MANY_CONTEXTS[:123])  # a reason's limit
    assert len(stand_in.contexts) == 5


async def test_changing_a_contexts_voice_settings_closes_the_socket_with_1008():
    async with ElevenLabsTTSStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in)
        await send(ws, text="", context_id="c")  # a keep-alive opens it, without settings
        await send(ws, text=" ", context_id="c", voice_settings={"stability": 0.5})
        await ws.receive()
        closing = await ws.receive()

    assert (closing.data, closing.extra) == (1008, VOICE_SETTINGS_CHANGED)


# run_test's default start_timeout (1 s) can be missed on a cold start: every one gets 5 s.


def pipecat_elevenlabs(stand_in: ElevenLabsTTSStandIn, **kwargs) -> ElevenLabsTTSService:
    """Stock pipecat, as pipelines/providers/elevenlabs.py configures it."""
    settings = ElevenLabsTTSService.Settings(voice="voice-1", language="en", speed=1.1)
    return ElevenLabsTTSService(
        api_key=kwargs.pop("api_key", KEY),
        url=stand_in.ws_url,
        sample_rate=8000,
        settings=settings,
        append_trailing_space=kwargs.pop("append_trailing_space", True),
        **kwargs,
    )


async def test_pipecat_elevenlabs_speaks_and_times_each_word_by_the_alignment():
    frames = [TTSSpeakFrame(GREETING), SleepFrame(0.5)]
    async with ElevenLabsTTSStandIn() as stand_in:
        service = pipecat_elevenlabs(stand_in)
        down, up = await run_test(service, frames_to_send=frames, start_timeout=5)

    speech = synthesize(GREETING)
    audio = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert {(f.sample_rate, f.num_channels) for f in audio} == {(8000, 1)}
    assert b"".join(f.audio for f in audio) == speech.pcm
    others = [f for f in down if not isinstance(f, TTSAudioRawFrame)]
    assert isinstance(others[0], TTSStartedFrame) or isinstance(others[1], TTSStartedFrame)
    assert isinstance([f for f in others if not isinstance(f, TTSTextFrame)][-1], TTSStoppedFrame)
    words = [f for f in down if isinstance(f, TTSTextFrame)]
    assert [f.text for f in words] == [w.word for w in speech.words]
    offsets = [round((f.pts - words[0].pts) / 1e6) for f in words]
    assert offsets == [round(w.start_s * 1000) for w in speech.words], "pts = where audio starts"
    assert not [f for f in up if isinstance(f, ErrorFrame)]
    (conn,) = stand_in.connections
    assert conn.api_key == KEY and conn.voice_id == "voice-1"
    assert {k: conn.query[k] for k in ("model_id", "output_format", "auto_mode")} == {
        "model_id": "eleven_flash_v2_5",
        "output_format": "pcm_8000",
        "auto_mode": "true",
    }
    assert conn.query["language_code"] == "en"
    (ctx,) = conn.contexts
    assert conn.messages[0] == {
        "text": " ",
        "context_id": ctx.context_id,
        "voice_settings": {"speed": 1.1},
    }
    assert conn.messages[1:4] == [
        {"text": GREETING + " ", "context_id": ctx.context_id},
        {"context_id": ctx.context_id, "flush": True},
        {"context_id": ctx.context_id, "close_context": True},
    ]
    assert conn.messages[-1] == {"close_socket": True} and not ctx.cut


async def test_pipecat_elevenlabs_speaks_a_streamed_reply_in_one_context():
    frames = [LLMFullResponseStartFrame(), LLMTextFrame("Hello there. "), LLMTextFrame("How ")]
    frames += [LLMTextFrame("are you? "), LLMFullResponseEndFrame(), SleepFrame(0.5)]
    async with ElevenLabsTTSStandIn() as stand_in:
        service = pipecat_elevenlabs(stand_in)
        down, _ = await run_test(service, frames_to_send=frames, start_timeout=5)

    audio = b"".join(f.audio for f in down if isinstance(f, TTSAudioRawFrame))
    assert audio == synthesize(GREETING).pcm
    assert [f.text for f in down if isinstance(f, TTSTextFrame)] == GREETING.split()
    (ctx,) = stand_in.contexts
    assert ctx.text == " Hello there. How are you? " and ctx.final


async def test_without_a_trailing_space_stock_pipecat_runs_sentences_and_words_together():
    frames = [LLMFullResponseStartFrame(), LLMTextFrame("Hello there. "), LLMTextFrame("How ")]
    frames += [LLMTextFrame("are you? "), LLMFullResponseEndFrame(), SleepFrame(0.5)]
    async with ElevenLabsTTSStandIn() as stand_in:
        service = pipecat_elevenlabs(stand_in, append_trailing_space=False)
        down, _ = await run_test(service, frames_to_send=frames, start_timeout=5)

    # ElevenLabs joins a context's texts verbatim: each should end with a space, as its docs
    # say. Stock pipecat 1.14 sends "Hello there." then "How are you?".
    assert stand_in.contexts[0].text == " Hello there.How are you?"
    words = [f for f in down if isinstance(f, TTSTextFrame)]
    assert [f.text for f in words] == GREETING.split()  # matched to the text sent, but...
    assert words[1].pts == words[2].pts, "...'How' got no timestamp of its own"


async def test_pipecat_elevenlabs_closes_the_context_on_an_interruption_which_cuts_it_short():
    # The next sentence's first word releases LONG to the service before the reply ends.
    frames = [LLMFullResponseStartFrame(), LLMTextFrame(LONG + " "), LLMTextFrame("And ")]
    frames += [SleepFrame(0.6)]
    frames += [InterruptionFrame(), SleepFrame(0.4)]
    async with ElevenLabsTTSStandIn(realtime_factor=1.0) as stand_in:
        service = pipecat_elevenlabs(stand_in)
        down, _ = await run_test(service, frames_to_send=frames, start_timeout=5)

    (ctx,) = stand_in.contexts
    assert {"context_id": ctx.context_id, "close_context": True} in stand_in.connections[0].messages
    assert ctx.cut and ctx.final
    heard = sum(len(f.audio) for f in down if isinstance(f, TTSAudioRawFrame))
    assert 0 < heard <= ctx.audio_bytes < len(synthesize(LONG).pcm) // 2


async def test_pipecat_elevenlabs_reports_the_1008_close_of_a_wrong_key():
    frames = [TTSSpeakFrame("Hello."), SleepFrame(0.5)]
    async with ElevenLabsTTSStandIn(api_key=KEY) as stand_in:
        # Without reconnecting, the close itself is reported (reconnects retry for seconds).
        service = pipecat_elevenlabs(stand_in, api_key="wrong", reconnect_on_error=False)
        down, up = await run_test(service, frames_to_send=frames, start_timeout=5)

    errors = [f.error for f in up if isinstance(f, ErrorFrame)]
    assert any("1008" in e and INVALID_KEY in e for e in errors), errors
    assert not [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert stand_in.connections[0].close_code == 1008
