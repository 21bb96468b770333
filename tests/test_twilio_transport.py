"""The Twilio transport: the bot's audio on the phone line, and what the caller heard of it."""

import asyncio
import base64
import json

import numpy as np
import pytest
from phone_socket import PhoneSocket
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    ClientConnectedFrame,
    EndWorkerFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.utils.text.base_text_aggregator import TextType

from telephony.frames import ReplyCutFrame, SentenceEndFrame
from telephony.mulaw import pcm_to_ulaw, ulaw_to_pcm
from telephony.transport import TwilioTransport

STREAM = "MZ" + "0" * 32
TICK_BYTES = 320  # 20 ms of 8 kHz 16-bit audio


def tone(secs: float, level: int) -> bytes:
    return np.full(int(secs * 8000), level, dtype=np.int16).tobytes()


def on_the_line(pcm: bytes) -> bytes:
    """`pcm` as a phone plays it: through μ-law."""
    return ulaw_to_pcm(pcm_to_ulaw(pcm))


def sentence(text: str, pcm: bytes, *, interruptible: bool = True) -> list[Frame]:
    frames: list[Frame] = [TTSTextFrame(text, text_type=TextType.SENTENCE)]
    frames += [TTSAudioRawFrame(pcm[i : i + 800], 8000, 1) for i in range(0, len(pcm), 800)]
    frames.append(SentenceEndFrame(text))
    for frame in frames:
        frame.interruptible = interruptible
    return frames


def reply(*sentences: list[Frame]) -> list[Frame]:
    return [TTSStartedFrame(), *(f for s in sentences for f in s), TTSStoppedFrame()]


FIRST, SECOND = tone(0.4, 1000), tone(0.6, 3000)
TWO_SENTENCES = reply(sentence("Of course.", FIRST), sentence("We open at nine.", SECOND))


class Ear(FrameProcessor):
    """After the transport: notes how much the caller had heard when each frame came by."""

    def __init__(self, phone: PhoneSocket):
        super().__init__()
        self.phone = phone
        self.seen: list[tuple[Frame, float]] = []

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            self.seen.append((frame, self.phone.played_ms))
        await self.push_frame(frame, direction)

    def heard_when(self, kind: type, text: str | None = None) -> float:
        """How much audio had played when the first frame of `kind` (and `text`) came by."""
        return next(
            played
            for frame, played in self.seen
            if isinstance(frame, kind) and (text is None or getattr(frame, "text", None) == text)
        )


async def play(frames: list[Frame], phone: PhoneSocket | None = None):
    """Run `frames` through a transport on `phone`; the frames out, and what the ear saw."""
    phone = phone or PhoneSocket()
    transport = TwilioTransport(phone, STREAM)
    ear = Ear(phone)
    pipeline = Pipeline([transport.input(), transport.output(), ear])
    down, up = await run_test(pipeline, frames_to_send=frames, start_timeout=5)
    return phone, ear, down, up


async def test_the_reply_plays_at_real_time_with_a_mark_after_each_chunk():
    phone, _ear, _down, _up = await play(TWO_SENTENCES)
    assert phone.heard_pcm == on_the_line(FIRST + SECOND)
    kinds = [message["event"] for message in phone.sent]
    assert kinds[:4] == ["media", "mark", "media", "mark"]  # each chunk, then its mark
    assert len(phone.playout.stretches) == 1  # no gap: sent ahead of the phone's playout


async def test_replies_back_to_back_lose_no_audio_between_them():
    # pipecat's output drops audio short of a chunk when the bot stops speaking: the start of
    # a reply that came in while the one before it was still playing out.
    apology = tone(0.43, 2000)  # 50 ms frames: a remainder short of the 40 ms chunk each time
    phone, _ear, _down, _up = await play([*TWO_SENTENCES, *reply(sentence("Sorry.", apology))])
    heard = phone.heard_pcm.rstrip(b"\x00")  # padded with silence to whole chunks
    assert heard.replace(b"\x00\x00", b"") == on_the_line(FIRST + SECOND + apology)


async def test_text_goes_on_as_the_caller_hears_it_and_the_reply_ends_when_all_is_heard():
    _phone, ear, _down, up = await play(TWO_SENTENCES)
    assert ear.heard_when(TTSTextFrame, "Of course.") <= 40  # its audio starts after it
    assert ear.heard_when(SentenceEndFrame, "Of course.") >= 400  # heard up to its end
    assert ear.heard_when(SentenceEndFrame, "We open at nine.") >= 1000
    assert ear.heard_when(TTSStoppedFrame) >= 1000
    assert ear.heard_when(BotStoppedSpeakingFrame) >= 1000  # not when sent: when heard
    assert [
        type(f) for f in up if isinstance(f, (BotStartedSpeakingFrame, BotStoppedSpeakingFrame))
    ] == [
        BotStartedSpeakingFrame,
        BotStoppedSpeakingFrame,
    ]


async def test_caller_speech_pauses_the_reply_and_quiet_resumes_it_where_it_stopped():
    frames = [
        *TWO_SENTENCES,
        SleepFrame(0.3),
        VADUserStartedSpeakingFrame(),  # an "mm-hm" over the bot
        SleepFrame(0.3),
        VADUserStoppedSpeakingFrame(),
        SleepFrame(1.5),
    ]
    phone, _ear, down, _up = await play(frames)
    assert len(phone.events("clear")) == 1
    assert len(phone.playout.stretches) == 2  # it stopped, then went on
    # Nothing lost, nothing twice: between Twilio's echoes the phone's place is reckoned at
    # real time, and this phone plays in 20 ms ticks, so the seam may be a tick off.
    heard, whole = phone.heard_pcm, on_the_line(FIRST + SECOND)
    assert abs(len(heard) - len(whole)) <= TICK_BYTES
    assert heard[:4000] == whole[:4000] and heard[-4000:] == whole[-4000:]
    assert not [f for f in down if isinstance(f, ReplyCutFrame)]


async def test_a_barge_in_cuts_the_reply_where_the_caller_stopped_hearing_it():
    frames = [
        *TWO_SENTENCES,
        SleepFrame(0.7),  # into the second sentence
        VADUserStartedSpeakingFrame(),
        SleepFrame(0.4),
        InterruptionFrame(),
        SleepFrame(0.5),
    ]
    phone, ear, down, up = await play(frames)
    (cut_down,) = [f for f in down if isinstance(f, ReplyCutFrame)]
    (cut_up,) = [f for f in up if isinstance(f, ReplyCutFrame)]
    assert cut_down.heard == cut_up.heard and cut_down.spoken == "Of course. We open at nine."
    heard_ms = phone.played_ms
    assert 400 < heard_ms < 1000 and abs(cut_down.heard_ms - heard_ms) <= 40
    assert cut_down.heard.startswith("Of course.") and cut_down.heard != cut_down.spoken
    # Paused at the caller's first sound, cut at the barge-in: one clear, no audio after it.
    (clear,) = [i for i, message in enumerate(phone.sent) if message["event"] == "clear"]
    assert not [message for message in phone.sent[clear:] if message["event"] == "media"]
    # The unheard sentence's frames never went on; the cut comes after the interruption.
    ends = [frame.text for frame, _ in ear.seen if isinstance(frame, SentenceEndFrame)]
    assert ends == ["Of course."]
    kinds = [type(frame) for frame in down]
    assert kinds.index(InterruptionFrame) < kinds.index(ReplyCutFrame)


async def test_the_call_ends_only_once_its_last_words_have_been_heard():
    farewell = reply(sentence("Goodbye!", tone(0.5, 2000), interruptible=False))
    _phone, ear, _down, _up = await play([*farewell, EndWorkerFrame(reason="done")])
    assert ear.heard_when(EndWorkerFrame) >= 500


async def test_uninterruptible_audio_is_not_paused_by_caller_speech():
    farewell = reply(sentence("Goodbye!", tone(0.6, 2000), interruptible=False))
    frames = [*farewell, SleepFrame(0.2), VADUserStartedSpeakingFrame(), SleepFrame(0.8)]
    phone, _ear, _down, _up = await play(frames)
    assert not phone.events("clear") and len(phone.playout.stretches) == 1


async def test_the_caller_is_heard_and_their_keys_too():
    phone = PhoneSocket()
    payload = base64.b64encode(b"\xff" * 120).decode()  # 15 ms of μ-law silence
    phone.says({"event": "media", "media": {"payload": payload}})
    phone.presses("7")
    _phone, _ear, down, _up = await play([SleepFrame(0.2)], phone)
    (audio,) = [f for f in down if isinstance(f, InputAudioRawFrame)]
    assert audio.ulaw == bytes.fromhex("ffff") * 60 and (audio.sample_rate, len(audio.audio)) == (
        8000,
        240,
    )
    (key,) = [f for f in down if isinstance(f, InputDTMFFrame)]
    assert key.button.value == "7"
    assert isinstance(down[0], ClientConnectedFrame)


async def test_an_echo_of_a_mark_never_sent_is_dropped_and_the_call_goes_on(log_lines):
    phone = PhoneSocket()
    phone.says({"event": "mark", "mark": {"name": "1:abc"}})  # the old tracker read float("abc")
    phone, _ear, _down, _up = await play([SleepFrame(0.1), *TWO_SENTENCES], phone)
    assert phone.heard_pcm == on_the_line(FIRST + SECOND)
    assert any("echo of mark '1:abc'" in line for line in log_lines)


@pytest.mark.parametrize("closing", [True, False], ids=["socket closed", "socket left open"])
async def test_the_caller_hanging_up_ends_the_pipeline_and_says_so(closing):
    phone = PhoneSocket()
    transport = TwilioTransport(phone, STREAM)
    phone.hangs_up(closing=closing)  # `stop` alone ends the call: nothing follows it
    _down, up = await run_test(
        Pipeline([transport.input(), transport.output()]),
        frames_to_send=[SleepFrame(0.2)],
        send_end_frame=False,
        start_timeout=5,
    )
    assert transport.caller_hung_up
    assert json.dumps([type(f).__name__ for f in up]).count("CancelWorkerFrame") == 1


class GonePhone(PhoneSocket):
    """A phone whose caller has gone: sending fails, and Twilio's `stop` comes after."""

    async def send_text(self, text: str) -> None:
        raise ConnectionError("the peer closed the connection")


async def test_a_hang_up_read_after_a_failed_send_still_ends_the_pipeline():
    # A send failing first (the caller's socket already closed) once made the hang-up pass
    # for our own, and the call stayed up until pipecat's idle timeout.
    phone = GonePhone()
    transport = TwilioTransport(phone, STREAM)
    asyncio.get_running_loop().call_later(0.3, phone.hangs_up)
    _down, up = await run_test(
        Pipeline([transport.input(), transport.output()]),
        frames_to_send=[*TWO_SENTENCES, SleepFrame(0.6)],
        send_end_frame=False,
        start_timeout=5,
    )
    assert transport.caller_hung_up
    assert json.dumps([type(f).__name__ for f in up]).count("CancelWorkerFrame") == 1
