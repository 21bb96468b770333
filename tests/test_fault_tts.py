"""Deepgram's TTS socket drops mid-reply: the bot reconnects and says the rest, context honest."""

import asyncio
import json
from urllib.parse import urlencode

import aiohttp
from pipecat.frames.frames import (
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

from harness.faults import tts as fault
from services.deepgram_tts import DeepgramAuraTTSService
from standins.deepgram_tts import DeepgramTTSStandIn
from standins.speech import synthesize
from telephony.frames import SentenceEndFrame

SENTENCES = fault.SENTENCES
AUTH = {"Authorization": "Token test-key"}


def pcm(text: str) -> bytes:
    return synthesize(text, sample_rate=8000).pcm


async def speak_and_read(ws, texts: list[str]) -> tuple[bytes, aiohttp.WSMessage]:
    """Send each text as a Speak, then read audio until a message that is not audio."""
    for text in texts:
        await ws.send_str(json.dumps({"type": "Speak", "text": text}))
    audio = b""
    async with asyncio.timeout(5):
        while (message := await ws.receive()).type in (aiohttp.WSMsgType.BINARY,):
            audio += message.data
    return audio, message


async def test_the_stand_in_cuts_the_kth_speak_after_n_bytes_then_refuses_once():
    query = urlencode({"encoding": "linear16", "sample_rate": "8000"})
    async with (
        DeepgramTTSStandIn(drop_on_speak=2, drop_after_bytes=1600, refuse_after_drop=1) as tts,
        aiohttp.ClientSession() as http,
    ):
        url = f"{tts.ws_url}/v1/speak?{query}"
        ws = await http.ws_connect(url, headers=AUTH)
        await ws.receive()  # Metadata
        audio, end = await speak_and_read(ws, [f"{s} " for s in SENTENCES])
        refused = await http.get(url.replace("ws://", "http://"), headers=AUTH)
        again = await http.ws_connect(url, headers=AUTH)
        await again.close()
    # No close frame: aiohttp's client reports a closed (or erroring) socket, not a close code.
    assert end.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE)
    assert audio == pcm(SENTENCES[0]) + pcm(SENTENCES[1])[:1600]
    assert tts.connections[0].dropped_at is not None and tts.connections[0].closed
    assert refused.status == 503 and tts.refused == [503] and len(tts.connections) == 2


async def test_the_stand_in_can_drop_with_deepgrams_1011_close():
    query = urlencode({"encoding": "linear16", "sample_rate": "8000"})
    async with (
        DeepgramTTSStandIn(drop_on_speak=1, drop_after_bytes=800, drop_with=1011) as tts,
        aiohttp.ClientSession() as http,
    ):
        ws = await http.ws_connect(f"{tts.ws_url}/v1/speak?{query}", headers=AUTH)
        await ws.receive()  # Metadata
        audio, end = await speak_and_read(ws, ["Hello there. "])
    assert end.type == aiohttp.WSMsgType.CLOSE and end.data == 1011
    assert audio == pcm("Hello there.")[:800]


async def reply_through_drop(stand_in: DeepgramTTSStandIn, pause_before_end: float = 0.0):
    """The booking reply through the TTS service; the frames it sent down.

    A sentence goes to the TTS once the next text shows it ended, the last one at the end of
    the reply: `pause_before_end` holds back the third.
    """
    frames = [LLMFullResponseStartFrame(), *(LLMTextFrame(f"{s} ") for s in SENTENCES)]
    frames += [SleepFrame(pause_before_end), LLMFullResponseEndFrame(), SleepFrame(2.5)]
    tts = DeepgramAuraTTSService(api_key="k", base_url=stand_in.ws_url, sample_rate=8000)
    down, _ = await run_test(tts, frames_to_send=frames, start_timeout=5)
    return down


def audio_at_boundaries(down) -> tuple[bytes, list[tuple[str, int]]]:
    """All the audio, and each sentence boundary with the audio bytes before it."""
    audio, boundaries = b"", []
    for frame in down:
        if isinstance(frame, TTSAudioRawFrame):
            audio += frame.audio
        elif isinstance(frame, SentenceEndFrame):
            boundaries.append((frame.text.strip(), len(audio)))
    return audio, boundaries


def fragment_of_second(audio: bytes) -> int:
    """Bytes of sentence 2 heard before it was spoken whole, asserting the audio is exactly
    sentence 1, that fragment, then sentences 2 and 3 whole."""
    one, two, three = (pcm(s) for s in SENTENCES)
    fragment = len(audio) - len(one) - len(two) - len(three)
    assert 0 <= fragment < len(two)
    assert audio == one + two[:fragment] + two + three
    return fragment


async def test_the_cut_sentence_and_the_rest_are_spoken_again_in_order_on_a_new_socket():
    async with DeepgramTTSStandIn(drop_on_speak=2, drop_after_bytes=4000) as stand_in:
        down = await reply_through_drop(stand_in)
    audio, boundaries = audio_at_boundaries(down)
    fragment = fragment_of_second(audio)
    one, two = len(pcm(SENTENCES[0])), len(pcm(SENTENCES[1]))
    assert boundaries == [
        (SENTENCES[0], one),
        (SENTENCES[1], one + fragment + two),
        (SENTENCES[2], len(audio)),
    ]
    assert len([f for f in down if isinstance(f, TTSStoppedFrame)]) == 1  # the reply ended once
    first, second = stand_in.connections
    assert first.dropped_at is not None
    assert second.speaks == [f"{s} " for s in SENTENCES[1:]]  # not the sentence fully heard
    assert second.flushes == 3  # two sentences, then the end of the reply


async def test_a_sentence_arriving_while_reconnecting_waits_and_follows_in_order(log_lines):
    stand_in = DeepgramTTSStandIn(drop_on_speak=2, drop_after_bytes=800, refuse_after_drop=1)
    async with stand_in:
        # The first reconnection is refused: the third sentence comes during the 1 s wait.
        down = await reply_through_drop(stand_in, pause_before_end=0.4)
    audio, boundaries = audio_at_boundaries(down)
    fragment_of_second(audio)
    assert [text for text, _ in boundaries] == SENTENCES
    assert stand_in.refused == [503]
    assert stand_in.connections[-1].speaks == [f"{s} " for s in SENTENCES[1:]]
    assert stand_in.connections[0].speaks == [f"{s} " for s in SENTENCES[:2]]
    assert any("speaking again 2 unfinished sentence(s)" in line for line in log_lines)


async def test_a_call_through_a_dropped_tts_socket_hears_the_whole_reply_and_goes_on():
    run = await fault.drop_mid_reply()
    print(run.outcome.figures)
    assert run.outcome.survived, run.outcome.problems

    # A second connection re-spoke the cut sentence and the one after it, not the first.
    dropped, resumed = run.connections[0], run.connections[1]
    assert dropped.dropped_at is not None
    # After any speculative reply withdrawn in the caller's pause ("Sorry, could you…").
    assert dropped.speaks[-len(SENTENCES) :] == [f"{s} " for s in SENTENCES]
    assert resumed.speaks[:2] == [f"{s} " for s in SENTENCES[1:]]
    # The caller heard every sentence, the cut one after its fragment, then the farewell.
    heard = run.outcome.heard
    assert fault.farewell(heard) == fault.FAREWELL, heard
    reply = heard[: heard.index(SENTENCES[-1]) + 1]
    assert reply[0] == SENTENCES[0] and reply[-2:] == SENTENCES[1:], heard
    cut = reply[1:-2]  # "A table…", or nothing if the fragment held no whole word
    assert len(cut) <= 1 and all(SENTENCES[1].startswith(h.rstrip("…")) for h in cut), heard
    assert run.fragment_bytes is not None and run.fragment_bytes <= fault.CUT_AFTER_BYTES // 2
    # The next LLM request has the reply once, as heard, with no interruption note.
    assert run.assistant_reply == fault.BOOKING_REPLY
    # Reconnected at once, not after pipecat's 4 s backoff (~0.1 s on an idle host).
    assert run.wire_gap is not None and run.wire_gap < 3.0
    assert run.caller_gap is not None
    assert run.hung_up
    warnings = [message for _, message in run.logs]
    assert any("connection lost, 2 sentence(s) unfinished" in m for m in warnings)
    # The dead socket is not "closed" again: no error frame, no ERROR line.
    assert not [m for level, m in run.logs if level == "ERROR"], run.logs


async def test_a_refused_reconnection_is_retried_after_a_second():
    run = await fault.drop_mid_reply(drop_with=1011, refuse_after_drop=1)
    print(run.outcome.figures)
    assert run.outcome.survived, run.outcome.problems
    assert run.refused == [503]
    assert 0.9 < run.wire_gap < fault.GAP_LIMIT_SECS  # 1 s backoff, within the context's 3 s
    assert run.assistant_reply == fault.BOOKING_REPLY
    assert any("HTTP 503" in message for _, message in run.logs)
