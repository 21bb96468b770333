"""Every call on record: a call with a barge-in, as the API tells it and as the caller heard it.

The same calls run against SQLite and a real PostgreSQL server (`database_url`).
"""

import httpx

from calls import recorded_call, spoken
from harness.barge_in import words_off
from harness.call_record import call_with_a_barge_in, long_then_short
from server.local import serve_locally
from standins.openai_replies import LONG_REPLY
from standins.script import BOOK_TABLE, GREETING, dial

TOKEN = "records-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LATENCY_TOLERANCE_MS = 50


async def test_a_call_with_a_barge_in_is_on_record_as_the_caller_heard_it(
    standins, declarations, database_url
):
    standins.openai.responder = long_then_short
    standins.openai.tokens_per_second = 8  # still streaming when the caller cuts in
    env = standins.env() | {"API_TOKEN": TOKEN, "DATABASE_URL": database_url}
    async with serve_locally(env, declarations) as bot:
        call, measured = await call_with_a_barge_in(bot.url)
        record = await recorded_call(bot.url, call.call_sid, token=TOKEN)
        async with httpx.AsyncClient(base_url=bot.url) as client:
            metrics = (await client.get("/metrics")).text

    assert record["call_sid"] == call.call_sid
    assert (record["direction"], record["pipeline"]) == ("inbound", "default")
    assert (record["from"], record["to"]) == ("+15551230000", "+15557650000")
    assert record["started_at"].endswith("Z") and record["ended_at"] > record["started_at"]
    assert record["end_reason"] == "caller_hung_up"
    turns = record["turns"]
    assert [t["speaker"] for t in turns] == ["bot", "caller", "bot", "caller", "bot"]
    greeting, booking, long_reply, cancel, answer = turns
    assert greeting["heard"] == greeting["text"] == GREETING
    assert not greeting["interrupted"] and greeting["latency_ms"] is None
    assert booking["text"] == BOOK_TABLE and booking["dtmf"] is None
    assert "cancel that" in cancel["text"].lower()
    # The cut reply: interrupted, and what the caller heard is what the phone played.
    assert long_reply["interrupted"] and LONG_REPLY.startswith(long_reply["text"])
    heard = long_reply["heard"].split()
    assert words_off(measured.heard_words, heard) <= 1, (measured.heard_words, heard)
    assert long_reply["text"].startswith(long_reply["heard"].rstrip("…"))
    assert answer["heard"] == answer["text"] == "Okay, no problem." and not answer["interrupted"]
    # Reply latency: the server's figure (from the marks) against the caller's own.
    for turn, caller_ms in zip((long_reply, answer), measured.latencies_ms, strict=True):
        assert abs(turn["latency_ms"] - caller_ms) <= LATENCY_TOLERANCE_MS, (turn, caller_ms)
        assert sum(turn["stages"].values()) == turn["latency_ms"]
        assert set(turn["stages"]) == {"turn_end_ms", "stt_ms", "llm_ms", "tts_ms", "playout_ms"}
    assert [t["at_ms"] for t in turns] == sorted(t["at_ms"] for t in turns)
    # The same replies in /metrics, with no number or secret in it.
    assert 'voicebot_reply_latency_seconds_count{pipeline="default",stage="total"} 2.0' in metrics
    assert 'voicebot_calls_ended_total{end_reason="caller_hung_up"} 1.0' in metrics
    assert "voicebot_calls_in_progress 0.0" in metrics
    assert "+1555" not in metrics and TOKEN not in metrics and call.call_sid not in metrics
    usage = record["usage"]
    assert usage["llm_tokens"] > 0 and usage["tts_characters"] >= len("Okay, no problem.")
    assert usage["stt_audio_secs"] > 3.0  # the caller's line, all of it to Deepgram


async def test_the_call_list_is_newest_first_filtered_and_behind_the_token(
    standins, declarations, database_url
):
    env = standins.env() | {"API_TOKEN": TOKEN, "DATABASE_URL": database_url}
    async with serve_locally(env, declarations) as bot:
        sids = []
        for caller in ("+15550000001", "+15550000002"):
            call = await dial(bot.url, caller=caller)
            await call.listen()
            await call.hang_up()
            sids.append(call.call_sid)
            await recorded_call(bot.url, call.call_sid, token=TOKEN)
        async with httpx.AsyncClient(base_url=bot.url) as client:
            assert (await client.get("/calls")).status_code == 401
            wrong = {"Authorization": "Bearer not-the-token-at-all"}
            assert (await client.get(f"/calls/{sids[0]}", headers=wrong)).status_code == 401
            listed = (await client.get("/calls", headers=AUTH)).json()
            by_number = await client.get("/calls", headers=AUTH, params={"number": "+15550000001"})
            page = (await client.get("/calls", headers=AUTH, params={"limit": 1})).json()
            nothing = await client.get(
                "/calls", headers=AUTH, params={"since": "2999-01-01T00:00:00Z"}
            )
            missing = await client.get("/calls/CA" + "0" * 32, headers=AUTH)

    assert [c["call_sid"] for c in listed["calls"]] == sids[::-1]
    assert all("turns" not in c for c in listed["calls"])
    assert [c["call_sid"] for c in by_number.json()["calls"]] == sids[:1]
    assert [c["call_sid"] for c in page["calls"]] == sids[1:] and page["next_offset"] == 1
    assert nothing.json()["calls"] == [] and missing.status_code == 404


async def test_without_api_token_there_is_no_api(bot):
    async with httpx.AsyncClient(base_url=bot.url) as client:
        assert (await client.get("/calls")).status_code == 404


async def test_keys_pressed_a_tool_call_and_the_farewell_are_on_record(standins, declarations):
    env = standins.env() | {"API_TOKEN": TOKEN}  # DATABASE_URL unset: SQLite under DATA_DIR
    async with serve_locally(env, declarations) as bot:
        call = await dial(bot.url)
        await call.listen()
        await call.press("4217#")
        keys_end = call.now()
        reply = await call.listen(timeout=10)
        await spoken(call, "goodbye.wav")
        await call.wait_closed(timeout=15)
        record = await recorded_call(bot.url, call.call_sid, token=TOKEN)

    turns = record["turns"]
    assert [t["speaker"] for t in turns] == ["bot", "caller", "bot", "caller", "bot"]
    keys, answer, farewell = turns[1], turns[2], turns[4]
    assert keys["dtmf"] == "4217#" and keys["text"] == "The caller pressed 4 2 1 7 #"
    assert answer["text"] == "Thank you. I have noted the number you entered."
    assert answer["latency_ms"] is not None
    # Timed from the last key (the entry's end) to the answer's first audio.
    assert abs(answer["latency_ms"] - (reply.start - keys_end) * 1000) <= LATENCY_TOLERANCE_MS
    assert farewell["heard"] == "Thanks for calling Luigi's. Goodbye!"
    (tool,) = record["events"]
    assert (tool["kind"], tool["name"]) == ("tool_call", "end_call")
    assert tool["detail"]["result"] == {"ended": True}
    assert turns[3]["at_ms"] <= tool["at_ms"] <= farewell["at_ms"]
    assert record["end_reason"] == "bot_farewell"
