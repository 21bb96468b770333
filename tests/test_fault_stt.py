"""STT faults, each through a whole simulated call: a socket cut mid-utterance, a refused key."""

import pytest
from loguru import logger

from harness.faults.stt import (
    BOOK_TABLE,
    BOOKING_REPLY,
    UNAVAILABLE,
    drop_mid_utterance,
    refused_key,
    resent_before_utterance,
)
from standins.stack import DEEPGRAM_KEY, OPENAI_KEY


@pytest.fixture
def records() -> list[dict]:
    """Every loguru record at WARNING or above while the test runs."""
    kept: list[dict] = []
    sink = logger.add(lambda m: kept.append(m.record), level="WARNING")
    yield kept
    logger.remove(sink)


async def test_a_socket_cut_mid_utterance_loses_none_of_the_callers_audio():
    outcome, e = await drop_mid_utterance()
    assert outcome.survived, outcome.problems
    first, second = e.connections[0], e.connections[-1]
    assert first.dropped and len(e.connections) == 2
    # The first socket got the utterance's start only; the second got all of it: what the
    # first had not transcribed, then the audio of the gap, then the rest.
    start = first.audio.find(e.utterance[:1600])
    assert 0 <= start and len(first.audio) - start < len(e.utterance)
    assert e.utterance in second.audio
    # (A VAD stop in the short pause before "seven" may split the finals: words count here.)
    assert first.final_transcripts == [] and " ".join(second.final_transcripts) == BOOK_TABLE
    assert e.user_messages == [BOOK_TABLE]
    assert " ".join(e.heard[-3:]) == BOOKING_REPLY


async def test_a_1011_close_and_a_refused_reconnect_still_lose_no_audio():
    # A stable socket that fails is reopened at once; refused, pipecat's backoff (4 s) applies.
    outcome, e = await drop_mid_utterance(drop_with=1011, refuse_after_drop=1)
    assert outcome.survived, outcome.problems
    assert len(e.connections) == 2 and e.connections[0].dropped
    assert e.utterance in e.connections[1].audio
    assert e.user_messages == [BOOK_TABLE]
    # The greeting's seconds of silence were not re-sent: only ~1 s before the speech (the
    # VAD reports it late), so the 10 s backlog had room for the utterance and the gap.
    first, second = e.connections
    assert first.audio.find(e.utterance[:1600]) > 3.0 * 16000, "the greeting came first"
    before = resent_before_utterance(e)
    assert before is not None and before < 2.0, before
    assert e.backlog_warnings == []
    # Everything re-sent was transcribed before the reply began: nothing cut it.
    assert " ".join(second.final_transcripts) == BOOK_TABLE
    assert e.results_during_reply == [] and e.clears_during_reply == 0
    assert " ".join(e.heard[-3:]) == BOOKING_REPLY, e.heard


@pytest.mark.parametrize(
    ("stage", "key", "failure"),
    [
        (
            "stt",
            DEEPGRAM_KEY,
            "Deepgram STT refused the API key (HTTP 401): check DEEPGRAM_API_KEY",
        ),
        ("llm", OPENAI_KEY, "OpenAI LLM refused the API key (HTTP 401): check OPENAI_API_KEY"),
    ],
)
async def test_a_refused_key_ends_the_call_with_an_apology(records, stage, key, failure):
    outcome, e = await refused_key(stage=stage)
    assert outcome.survived, outcome.problems
    assert " ".join(e.heard).endswith(UNAVAILABLE), e.heard
    assert e.hung_up_via_rest and e.standins.twilio.hangups == [e.call.call_sid]
    assert e.call.closed.is_set() and e.calls_left == 0
    if stage == "stt":
        # One attempt, refused; nothing hammers the provider afterwards.
        assert e.standins.stt.refused == [401] and e.standins.stt.connections == []
        # The TTS shares the key and still spoke the apology.
        assert any(UNAVAILABLE in text for c in e.standins.tts.connections for text in c.speaks)
    else:
        # Refused once when speculating on the caller's pause, and once more at the turn's
        # end (pipecat ends a turn the caller was in when the call began ending).
        assert {r.status for r in e.standins.openai.requests} == {401}
        assert len(e.standins.openai.requests) <= 2
    ours = [r["message"] for r in records if r["name"] == "server.provider_failure"]
    assert ours == [f"{failure}; apologising and hanging up"]
    assert not any(key in r["message"] for r in records)
    assert not [r["message"] for r in records if r["exception"]], "no traceback"


async def test_tts_refusing_the_key_hangs_up_without_an_apology(records):
    outcome, e = await refused_key(stage="tts")
    assert outcome.survived, outcome.problems
    assert "technical problem" not in " ".join(e.heard)
    assert e.hung_up_via_rest and e.calls_left == 0
    ours = [r["message"] for r in records if r["name"] == "server.provider_failure"]
    assert ours == [
        "Deepgram TTS refused the API key (HTTP 401): check DEEPGRAM_API_KEY; "
        "hanging up without an apology"
    ]
