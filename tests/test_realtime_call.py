"""Phone calls to the speech-to-speech pipeline (pipelines/realtime.toml) over real sockets."""

import asyncio

import pytest
from test_call import BOOK_TABLE, BOOKING_REPLY

from calls import heard_matches
from harness.barge_in import old_audio_after
from pipelines.declaration import load_declaration, load_declarations
from server.local import serve_locally
from standins.audio import frames_of, pcm_to_ulaw, read_wav, voice_span
from standins.script import GREETING, dial, long_reply_to_bookings
from standins.stack import OPENAI_KEY

FAREWELL = "Thanks for calling Luigi's. Goodbye!"
CANCEL = "Actually, cancel that. I need to change my reservation."
CANCEL_REPLY = "No problem. Which reservation would you like to change?"
PLAYOUT_TICK_MS = 20  # the simulated phone plays 20 ms at a time


@pytest.fixture
async def realtime_bot(standins):
    """The real bot server answering calls with the realtime pipeline."""
    env = standins.env() | {"PIPELINE": "realtime"}
    async with serve_locally(env, load_declarations()) as running:
        yield running


def record(bot, call) -> list[tuple[str, str]]:
    """The call's context as the server keeps it: (role, text) of each message."""
    context = bot.app.state.calls[call.call_sid].context
    return [(m["role"], m["content"]) for m in context.get_messages() if m["role"] != "system"]


async def test_the_caller_hears_the_greeting_then_openais_answer(realtime_bot, standins, data):
    call = await dial(realtime_bot.url)
    greeting = await call.listen()
    await call.say(data / "book_table.wav")
    reply = await call.listen()

    assert heard_matches(greeting.ulaw, GREETING)
    assert heard_matches(reply.ulaw, BOOKING_REPLY)
    (conn,) = standins.realtime.connections
    assert conn.authorization == f"Bearer {OPENAI_KEY}"
    assert conn.query == {"model": "gpt-realtime"}
    audio = conn.session["audio"]
    assert audio["input"]["format"] == audio["output"]["format"] == {"type": "audio/pcmu"}
    assert audio["input"]["turn_detection"] is None, "our VAD and turn strategies end turns"
    assert audio["output"]["voice"] == "marin"
    assert "receptionist of Luigi's" in conn.session["instructions"]
    assert [tool["name"] for tool in conn.session["tools"]] == ["end_call"]
    # Only pipecat's habitual cancel at a turn's start, with nothing to cancel, was refused.
    assert {error["code"] for error in conn.errors} <= {"response_cancel_not_active"}
    said, answered = conn.responses
    assert GREETING in said.instructions and said.reply.text == GREETING
    assert [commit.transcript for commit in conn.commits] == [BOOK_TABLE]
    assert answered.reply.text == BOOKING_REPLY and answered.status == "completed"
    assert record(realtime_bot, call) == [
        ("assistant", GREETING),
        ("user", BOOK_TABLE),
        ("assistant", BOOKING_REPLY),
    ]
    await call.hang_up()


async def test_mulaw_passes_through_byte_for_byte_both_ways(realtime_bot, standins, data):
    call = await dial(realtime_bot.url)
    greeting = await call.listen()
    pcm = read_wav(data / "book_table.wav")
    await call.say(pcm)
    reply = await call.listen()
    await call.hang_up()

    # What OpenAI was asked to hear is one stretch of what the phone sent: the line's
    # silence around the recording, and every byte of its voice as it left the phone.
    spoken = b"".join(frames_of(pcm_to_ulaw(pcm)))
    start, end = voice_span(pcm)
    (conn,) = standins.realtime.connections
    (commit,) = conn.commits
    assert spoken[int(start * 8000) : int(end * 8000)] in commit.audio
    assert commit.audio.strip(b"\xff") in spoken
    # What the phone played is what OpenAI sent, then at most one chunk of silent padding.
    for heard, response in zip((greeting, reply), conn.responses, strict=True):
        sent = bytes(response.audio)
        assert heard.ulaw[: len(sent)] == sent
        assert set(heard.ulaw[len(sent) :]) <= {0xFF} and len(heard.ulaw) - len(sent) < 320


async def test_a_barge_in_truncates_openais_reply_where_the_phone_stopped_playing_it(
    realtime_bot, standins, data
):
    standins.realtime.responder = long_reply_to_bookings
    standins.realtime.realtime_factor = 1.0  # OpenAI is still speaking when the caller cuts in
    call = await dial(realtime_bot.url)
    await call.listen()
    await call.say(data / "book_table.wav")
    reply_start = await call.wait_for_bot_audio(timeout=10)
    await asyncio.sleep(1.5)
    onset = await call.say(data / "cancel.wav")
    after = await call.listen(timeout=15)

    clears = [e.t for e in call.events("clear") if e.t > onset]
    assert clears, "Twilio got a clear"
    heard_ms = sum(len(s.ulaw) for s in call.heard if reply_start <= s.start < clears[0]) / 8
    (conn,) = standins.realtime.connections
    cut = conn.responses[1]
    (truncation,) = conn.truncations
    assert truncation.item_id == cut.item_id
    assert abs(truncation.audio_end_ms - heard_ms) <= standins.realtime.chunk_ms + PLAYOUT_TICK_MS
    assert truncation.audio_end_ms < truncation.audio_ms, "not what OpenAI had sent by then"
    assert conn.clears == 2, "the input buffer cleared as each turn began (its onset replayed)"
    assert cut.id in conn.cancels and (cut.status, cut.reason) == ("cancelled", "client_cancelled")
    assert cut.words_sent < len(cut.reply.text.split())
    assert old_audio_after(call, clears[0]) == 0, "no audio of the cut reply after the clear"
    # The caller's first words, spoken before the barge-in was confirmed, reached OpenAI.
    assert conn.commits[-1].transcript == CANCEL
    assert heard_matches(after.ulaw, CANCEL_REPLY)
    await call.hang_up()


async def test_the_bot_says_its_farewell_then_hangs_up_through_rest(realtime_bot, standins, data):
    call = await dial(realtime_bot.url)
    await call.listen()
    await call.say(data / "goodbye.wav")
    farewell = await call.listen()
    await call.wait_closed(timeout=10)

    assert heard_matches(farewell.ulaw, FAREWELL), "heard in full"
    assert await standins.twilio.wait_for_hangup(call.call_sid, timeout=5)
    (hangup,) = [r for r in standins.twilio.requests if r.form.get("Status") == "completed"]
    assert call.stream_time(hangup.at) >= farewell.end - 0.05
    (conn,) = standins.realtime.connections
    _, ending, said = conn.responses
    assert [c.name for c in ending.reply.tool_calls] == ["end_call"]
    (call_item,) = [
        e["item"]
        for e in conn.sent_of("conversation.item.added")
        if e["item"]["type"] == "function_call"
    ]
    outputs = [e["item"] for e in conn.received if e["type"] == "conversation.item.create"]
    assert [o["call_id"] for o in outputs if o["type"] == "function_call_output"] == [
        call_item["call_id"]
    ]
    assert FAREWELL in said.instructions and said.status == "completed"


async def test_with_turn_end_provider_openais_server_vad_ends_the_turns(standins, data, tmp_path):
    source = load_declarations()["realtime"].path.read_text()
    path = tmp_path / "realtime_vad.toml"
    path.write_text(source.replace("[turn]", '[turn]\nend = "provider"'))
    declarations = load_declarations() | {"realtime_vad": load_declaration(path)}
    env = standins.env() | {"PIPELINE": "realtime_vad"}
    async with serve_locally(env, declarations) as bot:
        call = await dial(bot.url)
        await call.listen()
        await call.say(data / "book_table.wav")
        reply = await call.listen()
        await call.hang_up()

    assert heard_matches(reply.ulaw, BOOKING_REPLY)
    (conn,) = standins.realtime.connections
    detection = conn.session["audio"]["input"]["turn_detection"]
    assert detection["type"] == "server_vad" and detection["silence_duration_ms"] == 600
    assert [commit.transcript for commit in conn.commits] == [BOOK_TABLE]
    committed_by = [
        e["type"] for e in conn.received if e["type"].startswith("input_audio_buffer.c")
    ]
    assert "input_audio_buffer.commit" not in committed_by, "OpenAI committed the turn itself"
    assert conn.sent_of("input_audio_buffer.speech_stopped")


async def test_the_caller_hanging_up_mid_reply_closes_openais_socket_within_a_second(
    realtime_bot, standins, data
):
    standins.realtime.responder = long_reply_to_bookings
    standins.realtime.realtime_factor = 1.0
    before = set(asyncio.all_tasks())
    call = await dial(realtime_bot.url)
    await call.listen()
    await call.say(data / "book_table.wav")
    await call.wait_for_bot_audio(timeout=10)
    await asyncio.sleep(0.5)
    hung_up = asyncio.get_running_loop().time()
    await call.hang_up()
    while realtime_bot.app.state.calls:
        await asyncio.sleep(0.01)

    assert asyncio.get_running_loop().time() - hung_up < 3.0  # at once (~0.1 s on an idle host)
    await asyncio.sleep(0.2)  # let closed sockets finish their close handshakes
    left = {t for t in asyncio.all_tasks() if t not in before and not t.done()}
    left.discard(asyncio.current_task())
    assert not left, f"tasks left behind: {[t.get_name() for t in left]}"
    (conn,) = standins.realtime.connections
    assert conn.closed and conn.responses[-1].status == "in_progress", "closed mid-reply"
    assert standins.twilio.hangups == []
