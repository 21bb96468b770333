"""Where a server's CPU goes: py-spy samples of a running worker, grouped into what they do."""

import asyncio
import re
import sys
from collections import Counter
from pathlib import Path

# What a sample was doing; the last two are generic, used only when nothing specific matches.
CATEGORIES = [
    ("Smart Turn model", r"audio/turn/"),
    ("Silero VAD model", r"vad/silero\.py|onnxruntime"),
    ("VAD loudness (BS.1770)", r"audio/volume\.py|calculate_audio_volume|pyloudnorm"),
    ("resampling", r"resampler|soxr"),
    (
        "Deepgram STT socket",
        r"deepgram/listen|services/deepgram/stt|services/deepgram_stt|reconnecting_websocket",
    ),
    ("Deepgram TTS socket", r"deepgram/speak|services/deepgram/tts|services/deepgram_tts"),
    ("OpenAI stream", r"openai/|httpx|httpcore|services/openai"),
    ("Twilio media (JSON, base64, μ-law)", r"serializers/twilio|media_streams|mulaw\.py"),
    ("Twilio socket", r"starlette/websockets|websockets_sansio|transports/websocket/fastapi"),
    ("turn detection", r"turns/|vad_controller|vad_analyzer"),
    ("playback truth (marks)", r"twilio_output|playout|spoken|heard_context"),
    ("pipecat frame plumbing", r"pipecat/"),
    ("event loop", r"asyncio/|uvloop|selectors"),
]


async def record(pid: int, seconds: float, out: Path) -> None:
    """Sample process `pid` (not its children) for `seconds` into py-spy's raw format."""
    spy = Path(sys.executable).with_name("py-spy")
    command = [str(spy), "record", "--pid", str(pid), "--duration", str(int(seconds))]
    command += ["--rate", "200", "--format", "raw", "--nonblocking", "--output", str(out)]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    await process.wait()


def summarize(raw: Path) -> tuple[list[tuple[str, float]], list[tuple[str, float]]] | None:
    """Shares of samples by category, and the top functions by own time (None: no samples)."""
    by_category, by_function = Counter(), Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        by_category[_category(frames)] += int(count)
        by_function[_short(frames[-1])] += int(count)
    total = sum(by_category.values())
    if not total:
        return None
    shares = [(name, n / total) for name, n in by_category.most_common()]
    return shares, [(name, n / total) for name, n in by_function.most_common(12)]


def _category(frames: list[str]) -> str:
    """The innermost specific category; failing that, the innermost generic one."""
    specific, generic = CATEGORIES[:-2], CATEGORIES[-2:]
    for group in (specific, generic):
        for frame in reversed(frames):
            for name, pattern in group:
                if re.search(pattern, frame):
                    return name
    return "other"


def _short(frame: str) -> str:
    """`func (path/to/pkg/module.py:12)` → `func (pkg/module.py)`."""
    return re.sub(r"\s*\((?:.*/)?([^/]+/[^/]+\.py):\d+\)", r" (\1)", frame)
