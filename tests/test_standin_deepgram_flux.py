"""The Deepgram Flux stand-in speaks Flux's protocol, to a raw socket and to pipecat."""

import asyncio
import itertools
import json
from urllib.parse import urlencode

import aiohttp
import pytest
from pipecat.frames.frames import (
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    ProposedUserStartedSpeakingFrame,
    ProposedUserStoppedSpeakingFrame,
    STTUpdateSettingsFrame,
    TranscriptionFrame,
)
from pipecat.services.deepgram.flux.stt import DeepgramFluxSTTService
from pipecat.tests.utils import SleepFrame, run_test

from recordings import RECORDINGS
from standins.audio import read_wav, voice_span
from standins.deepgram_flux import DeepgramFluxStandIn
from standins.script import BOOK_TABLE

DATA = RECORDINGS
AUTH = {"Authorization": "Token test-key"}
CANCEL = "Actually, cancel that. I need to change my reservation."


def silence(seconds: float) -> bytes:
    return bytes(2 * int(8000 * seconds))


def listen_url(stand_in: DeepgramFluxStandIn, **params: str) -> str:
    query = {"model": "flux-general-en", "encoding": "linear16", "sample_rate": "8000", **params}
    return f"{stand_in.ws_url}/v2/listen?{urlencode(query)}"


async def stream(ws: aiohttp.ClientWebSocketResponse, pcm: bytes) -> None:
    """Send audio in Flux's 80 ms chunks."""
    for i in range(0, len(pcm), 1280):
        await ws.send_bytes(pcm[i : i + 1280])


async def receive_until(ws, event: str, timeout: float = 5.0) -> list[dict]:
    """Messages up to and including the first `TurnInfo` of `event`."""
    messages: list[dict] = []
    async with asyncio.timeout(timeout):
        while not messages or messages[-1].get("event") != event:
            message = await ws.receive()
            assert message.type == aiohttp.WSMsgType.TEXT, message
            messages.append(json.loads(message.data))
    return messages


async def turn_of(pcm: bytes, **params: str) -> list[dict]:
    """Everything Flux says about `pcm` up to its EndOfTurn, on a fresh stand-in."""
    async with DeepgramFluxStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(listen_url(stand_in, **params), headers=AUTH)
        await stream(ws, pcm)
        return await receive_until(ws, "EndOfTurn")


@pytest.mark.parametrize(
    ("headers", "params", "status"),
    [
        ({}, {}, 401),
        ({"Authorization": "Bearer test-key"}, {}, 401),
        (AUTH, {"model": "nova-3-general"}, 400),
        (AUTH, {"encoding": "mulaw"}, 400),
        (AUTH, {"eot_threshold": "0.3"}, 400),
        (AUTH, {"eot_timeout_ms": "100"}, 400),
    ],
)
async def test_a_bad_upgrade_is_refused_before_the_socket_opens(headers, params, status):
    async with DeepgramFluxStandIn() as stand_in, aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(listen_url(stand_in, **params), headers=headers)
        assert refused.value.status == status
        assert refused.value.headers["dg-error"]
        assert stand_in.refused == [status] and stand_in.connections == []


async def test_a_turn_starts_with_its_first_words_grows_by_updates_and_ends_after_the_speech():
    pcm = silence(1.0) + read_wav(DATA / "book_table.wav") + silence(1.0)
    messages = await turn_of(pcm)

    connected, *turn_info = messages
    assert connected["type"] == "Connected" and connected["sequence_id"] == 0
    assert [m["sequence_id"] for m in messages] == list(range(len(messages)))
    assert all(m["type"] == "TurnInfo" and m["turn_index"] == 0 for m in turn_info)
    events = [m["event"] for m in turn_info]
    start = events.index("StartOfTurn")
    assert set(events[:start]) <= {"Update"} and all(not m["transcript"] for m in turn_info[:start])
    assert set(events[start + 1 : -1]) == {"Update"} and events[-1] == "EndOfTurn"
    transcripts = [m["transcript"] for m in turn_info[start:]]
    assert transcripts[0] and all(BOOK_TABLE.startswith(t) for t in transcripts)
    assert [len(t) for t in transcripts] == sorted(len(t) for t in transcripts)
    end = turn_info[-1]
    assert end["transcript"] == BOOK_TABLE and end["trigger"] == "model"
    assert [w["word"] for w in end["words"]] == BOOK_TABLE.split()
    assert end["audio_window_start"] == pytest.approx(1.0, abs=0.03)
    # Updates come every ~0.25 s of audio; the turn ends 0.28 s into the silence
    # (eot_threshold 0.7 of the stand-in's 0.4 s), measured in stream time.
    ticks = [m["audio_window_end"] for m in turn_info[start:-1]]  # StartOfTurn, Updates
    assert {round(b - a, 2) for a, b in itertools.pairwise(ticks)} == {0.24}
    voice_end = 1.0 + voice_span(read_wav(DATA / "book_table.wav"))[1]
    assert end["audio_window_end"] - voice_end == pytest.approx(0.28, abs=0.05)
    assert end["end_of_turn_confidence"] >= 0.7


async def test_a_higher_eot_threshold_ends_the_turn_later():
    pcm = read_wav(DATA / "opening_hours.wav") + silence(1.0)
    default = (await turn_of(pcm))[-1]["audio_window_end"]
    patient = (await turn_of(pcm, eot_threshold="0.9"))[-1]["audio_window_end"]
    assert patient - default == pytest.approx(0.08, abs=0.021)  # (0.9 - 0.7) × 0.4 s


async def test_words_that_do_not_end_a_sentence_wait_for_the_eot_timeout():
    cut = read_wav(DATA / "book_table.wav")[: 8000 * 2 * 2]  # "Hi, I'd like to book a"
    end = (await turn_of(cut + silence(2.0), eot_timeout_ms="1000"))[-1]
    assert end["trigger"] == "timeout" and end["transcript"].startswith("Hi, I'd like")
    assert end["end_of_turn_confidence"] <= 0.25
    assert end["audio_window_end"] - voice_span(cut)[1] == pytest.approx(1.0, abs=0.05)


async def test_an_eager_end_of_turn_is_withdrawn_when_the_caller_goes_on():
    pcm = read_wav(DATA / "cancel.wav") + silence(1.0)
    messages = await turn_of(pcm, eager_eot_threshold="0.5", eot_threshold="0.9")
    events = [(m["event"], m["transcript"]) for m in messages[1:] if m["event"] != "Update"]
    assert events[1:] == [
        ("EagerEndOfTurn", "Actually, cancel that."),  # the 0.32 s pause after "that."
        ("TurnResumed", "Actually, cancel that."),
        ("EagerEndOfTurn", CANCEL),
        ("EndOfTurn", CANCEL),
    ]


async def test_closestream_answers_an_update_and_closes_without_ending_the_turn():
    async with DeepgramFluxStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(listen_url(stand_in), headers=AUTH)
        await stream(ws, read_wav(DATA / "yes.wav")[:8000])  # still speaking
        await ws.send_str(json.dumps({"type": "CloseStream"}))
        messages = [json.loads(m.data) async for m in ws]
    assert messages[-1]["event"] == "Update" and messages[-1]["transcript"]
    assert "EndOfTurn" not in [m.get("event") for m in messages]
    (connection,) = stand_in.connections
    assert connection.controls == ["CloseStream"] and connection.closed


async def test_configure_changes_the_thresholds_and_is_answered():
    async with DeepgramFluxStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(listen_url(stand_in, keyterm="Luigi"), headers=AUTH)
        await ws.receive_json()  # Connected
        await ws.send_json({"type": "Configure", "thresholds": {"eot_threshold": 0.8}})
        success = await ws.receive_json()
        await ws.send_json({"type": "Configure", "thresholds": {"eot_timeout_ms": 10}})
        failure = await ws.receive_json()
    assert success["type"] == "ConfigureSuccess"
    assert success["thresholds"]["eot_threshold"] == 0.8 and success["keyterms"] == ["Luigi"]
    assert failure["type"] == "ConfigureFailure" and "eot_timeout_ms" in failure["description"]


async def test_a_message_flux_cannot_parse_is_a_fatal_error():
    async with DeepgramFluxStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(listen_url(stand_in), headers=AUTH)
        await ws.receive_json()  # Connected
        await ws.send_str("not json")
        error = await ws.receive_json()
        closing = await ws.receive()
    assert error["type"] == "Error" and error["code"] == "UNPARSABLE_CLIENT_MESSAGE"
    assert closing.type == aiohttp.WSMsgType.CLOSE


def audio_frames(pcm: bytes) -> list[InputAudioRawFrame]:
    return [InputAudioRawFrame(pcm[i : i + 320], 8000, 1) for i in range(0, len(pcm), 320)]


async def test_pipecats_flux_client_gets_the_turn_and_its_transcript():
    pcm = silence(0.5) + read_wav(DATA / "book_table.wav") + silence(1.0)
    async with DeepgramFluxStandIn() as stand_in:
        service = DeepgramFluxSTTService(
            api_key="test-key",
            url=f"{stand_in.ws_url}/v2/listen",
            sample_rate=8000,
            settings=DeepgramFluxSTTService.Settings(eot_timeout_ms=2000, keyterm=["Luigi"]),
        )
        update = STTUpdateSettingsFrame(delta=DeepgramFluxSTTService.Settings(eot_threshold=0.8))
        frames = [*audio_frames(pcm), update, SleepFrame(0.3)]
        down, _ = await run_test(service, frames_to_send=frames)

    turn = [f for f in down if isinstance(f, (TranscriptionFrame, InterimTranscriptionFrame))]
    proposals = [f for f in down if "Proposed" in type(f).__name__]
    assert [type(f) for f in proposals] == [
        ProposedUserStartedSpeakingFrame,
        ProposedUserStoppedSpeakingFrame,
    ]
    assert all(type(f) is InterimTranscriptionFrame for f in turn[:-1]) and len(turn) > 5
    assert type(turn[-1]) is TranscriptionFrame and turn[-1].text == BOOK_TABLE
    assert turn[-1].finalized
    (connection,) = stand_in.connections
    assert connection.authorization == "Token test-key"
    assert connection.query["eot_timeout_ms"] == "2000" and connection.keyterms == ["Luigi"]
    assert connection.turns == [BOOK_TABLE]
    assert connection.controls == ["Configure", "CloseStream"]
    assert [m["type"] for m in connection.sent if "Configure" in m["type"]] == ["ConfigureSuccess"]
