"""Downsampler: OpenAI's 24 kHz speech to the call's 8 kHz, streamed, aligned, band-limited."""

import numpy as np

from services.downsampler import Downsampler
from standins.speech import synthesize

TEXT = "Of course. A table for two tomorrow at seven."


def tone(hz: float, seconds: float = 0.5, rate: int = 24000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (10000 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def downsample(pcm: bytes) -> np.ndarray:
    downsampler = Downsampler()
    out = downsampler.process(pcm) + downsampler.flush()
    return np.frombuffer(out, dtype="<i2").astype(float)


def level_db(samples: np.ndarray) -> float:
    middle = samples[len(samples) // 4 : -len(samples) // 4]  # away from the edges
    return 20 * np.log10(np.sqrt(np.mean(middle**2)) + 1e-9)


def test_an_utterance_becomes_a_third_as_many_samples_however_it_is_chunked():
    pcm = synthesize(TEXT, sample_rate=24000).pcm
    whole = Downsampler()
    expected = whole.process(pcm) + whole.flush()
    rng = np.random.default_rng(7)
    chunked, downsampler, i = b"", Downsampler(), 0
    while i < len(pcm):
        n = int(rng.integers(1, 4000))  # odd sizes too: half a sample waits for its other half
        chunked += downsampler.process(pcm[i : i + n])
        i += n
    chunked += downsampler.flush()
    assert chunked == expected
    assert len(expected) == len(synthesize(TEXT, sample_rate=8000).pcm)  # 3:1, exactly


def test_the_output_is_not_delayed_and_a_chunk_comes_out_at_once_but_its_last_3_ms():
    impulse = np.zeros(2400, dtype="<i2")
    impulse[300] = 30000
    downsampler = Downsampler()
    first = downsampler.process(impulse.tobytes())
    out = np.frombuffer(first + downsampler.flush(), dtype="<i2")
    assert int(np.argmax(out)) == 100  # input sample 300 is output sample 100: no shift
    assert len(first) // 2 >= (2400 - 72) // 3  # all but 72 input samples' worth (3 ms)


def test_the_telephone_band_passes_and_what_would_fold_into_it_is_removed():
    full = 20 * np.log10(10000 / np.sqrt(2))
    for hz in (300, 1000, 3000, 3400):
        assert abs(level_db(downsample(tone(hz))) - full) < 0.1
    for hz in (4400, 5000, 9000, 11000):  # above 4 kHz: would fold back to 0-3.6 kHz
        assert level_db(downsample(tone(hz))) < full - 60


def test_the_stand_in_voice_downsampled_is_the_same_voice_at_8khz():
    ours = downsample(synthesize(TEXT, sample_rate=24000).pcm)
    native = np.frombuffer(synthesize(TEXT, sample_rate=8000).pcm, dtype="<i2").astype(float)
    assert len(ours) == len(native)
    assert np.corrcoef(ours, native)[0, 1] > 0.85  # the same words at the same times


def test_flush_starts_the_next_utterance_afresh():
    downsampler = Downsampler()
    downsampler.process(tone(1000, 0.1))
    downsampler.flush()
    again = downsampler.process(synthesize("Hello.", 24000).pcm) + downsampler.flush()
    fresh = Downsampler()
    assert again == fresh.process(synthesize("Hello.", 24000).pcm) + fresh.flush()
