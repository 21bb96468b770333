"""Audio the caller speaks before Deepgram's socket is open still reaches the STT."""

from calls import final_transcripts, user_texts
from pipelines.declaration import load_declarations
from server.local import serve_locally
from standins.deepgram_stt import DeepgramSTTStandIn
from standins.script import dial
from standins.stack import running_standins

OPENING_HOURS = "What time do you open on Saturday?"


async def test_speech_in_the_first_100_ms_is_transcribed_while_deepgram_is_still_connecting(data):
    slow_stt = DeepgramSTTStandIn(connect_delay=0.8)
    async with (
        running_standins(stt=slow_stt) as standins,
        serve_locally(standins.env(), load_declarations()) as bot,
    ):
        call = await dial(bot.url)
        speech_started = await call.say(data / "opening_hours.wav")
        assert speech_started < slow_stt.connect_delay  # spoken while Deepgram was connecting
        await call.listen()
        assert " ".join(final_transcripts(standins)) == OPENING_HOURS
        assert user_texts(standins.openai.requests[-1].body) == [OPENING_HOURS]
        await call.hang_up()
