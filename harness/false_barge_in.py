"""The figures behind the default `min_barge_in_secs`: how long coughs and speech look to VAD.

    python -m harness.false_barge_in      (or: make false-barge-in)

For each recording in recordings/ and a few synthetic non-interruptions (a cough: decaying
noise; "mm-hm": two short hums), prints the longest of the VAD's speech segments (VAD start →
VAD stop, so including its `stop_secs` hang-over) with the default VAD parameters, heard as a
call hears it: μ-law, in 20 ms frames. Those frames line up with the VAD's 32 ms windows in
eight ways, which can move a segment's ends by a window or split it: each way is measured.
"""

import asyncio

import numpy as np
from pipecat.audio.vad.vad_analyzer import VADParams, VADState

from models.silero_vad import SharedSileroVADAnalyzer
from pipelines.declaration import load_declarations
from recordings import RECORDINGS
from standins.audio import read_wav
from telephony.mulaw import pcm_to_ulaw, ulaw_to_pcm

DATA = RECORDINGS


def cough(ms: int, seed: int = 1) -> bytes:
    """A cough-like burst: broadband noise with a fast decay."""
    n = 8 * ms
    t = np.arange(n) / 8000
    noise = np.random.default_rng(seed).normal(0, 1, n) * np.exp(-t / (ms / 3000))
    return (noise * 9000).astype(np.int16).tobytes()


def hum(ms: int, pitch: float) -> bytes:
    """A closed-mouth voiced hum with a smooth envelope."""
    n = 8 * ms
    t = np.arange(n) / 8000
    voice = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 8))
    return (voice * np.sin(np.pi * np.arange(n) / n) * 6000).astype(np.int16).tobytes()


def mm_hm() -> bytes:
    """A backchannel "mm-hm": two hums with a short gap."""
    return hum(220, 140) + bytes(2 * 8 * 90) + hum(260, 120)


def samples() -> dict[str, bytes]:
    """The recordings (first 20 s of the long ones) and the synthetic non-interruptions."""
    found = {p.stem: read_wav(p)[: 2 * 8000 * 20] for p in sorted(DATA.glob("*.wav"))}
    return found | {"cough 250 ms": cough(250), "cough 400 ms": cough(400), "mm-hm": mm_hm()}


async def vad_segments(pcm: bytes, params: VADParams, lead_frames: int = 0) -> list[float]:
    """Durations (s) from each VAD start to the following stop, as a call hears `pcm`.

    μ-law coded, in 20 ms frames, after 1 s and `lead_frames` frames of silence; 1 s after.
    """
    vad = SharedSileroVADAnalyzer(sample_rate=8000, params=params)
    vad.set_sample_rate(8000)
    padded = ulaw_to_pcm(pcm_to_ulaw(bytes(16000 + 320 * lead_frames) + pcm + bytes(16000)))
    segments, started = [], None
    for i in range(0, len(padded) - 320, 320):
        state, now = await vad.analyze_audio(padded[i : i + 320]), i / 16000
        if state == VADState.SPEAKING and started is None:
            started = now
        elif state == VADState.QUIET and started is not None:
            segments.append(round(now - started, 2))
            started = None
    return segments


async def measure() -> dict[str, list[list[float]]]:
    """VAD segments of every sample, each frame alignment, with the default VAD parameters."""
    turn = load_declarations()["default"].turn
    params = VADParams(
        confidence=turn.vad_confidence,
        start_secs=turn.vad_start_secs,
        stop_secs=turn.vad_stop_secs,
        min_volume=turn.vad_min_volume,
    )
    return {
        name: [await vad_segments(pcm, params, lead) for lead in range(8)]
        for name, pcm in samples().items()
    }


def main() -> None:
    """Print the segments and what the default threshold does with each."""
    import sys

    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    threshold = load_declarations()["default"].turn.min_barge_in_secs
    print(f"min_barge_in_secs = {threshold}: a segment must outlast it to cut the bot off\n")
    print(f"{'sample':<16} {'longest segment':>15}  would interrupt")
    for name, alignments in asyncio.run(measure()).items():
        longest = [max(segments, default=0.0) for segments in alignments]
        low, high = min(longest), max(longest)
        span = f"{low:.2f}–{high:.2f} s" if high else "-"
        verdict = "yes" if low > threshold else "no" if high <= threshold else "sometimes"
        print(f"{name:<16} {span:>15}  {verdict}")


if __name__ == "__main__":
    main()
