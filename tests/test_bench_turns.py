"""bench.turns: its ground truth and scoring, and a quick run that reports every figure."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.turns import Recording, Run, configs, score, voice_spans
from pipelines.declaration import PIPELINES_DIR, load_declaration

ROOT = Path(__file__).parent.parent


def tone(seconds: float) -> bytes:
    t = np.arange(round(seconds * 8000)) / 8000
    return (8000 * np.sin(2 * np.pi * 200 * t)).astype(np.int16).tobytes()


def hiss(seconds: float) -> bytes:
    noise = np.random.default_rng(1).normal(0, 30, round(seconds * 8000))
    return noise.astype(np.int16).tobytes()


def test_the_voice_is_found_by_its_level_and_word_gaps_are_bridged():
    pcm = hiss(0.3) + tone(0.5) + hiss(0.05) + tone(0.4) + hiss(1.2) + tone(0.6) + hiss(0.5)
    spans = voice_spans(pcm)
    assert [(round(a, 2), round(b, 2)) for a, b in spans] == [(0.3, 1.25), (2.45, 3.05)]


def recording(cut: bool = False) -> Recording:
    # Voice, a 0.8 s pause, voice, a 1.5 s pause (an utterance end), voice.
    voice = [(0.0, 1.0), (1.8, 2.4), (3.9, 4.4)]
    return Recording("r", b"", voice, cut)


def run(turn_ends: list[float], cut: bool = False) -> Run:
    label = configs(load_declaration(PIPELINES_DIR / "default.toml"))[0]
    return Run(recording(cut), label, turn_ends, vad_stops=[t - 0.1 for t in turn_ends])


def test_turn_ends_are_scored_against_the_pauses():
    s = score([run([1.3, 2.9, 5.0])])
    assert s.false_ends == {"r": 1}  # at the 0.8 s pause
    assert s.heard == {"r": 1}  # 0.5 s before the caller went on: the bot was speaking
    assert [round(x, 2) for x in s.latencies] == [0.5, 0.6]  # after 2.4 and after 4.4
    assert s.missed == 0
    assert s.pauses_ended == {(0.7, 1.0): [1, 1], (1.0, 60.0): [1, 1]}


def test_a_false_end_the_caller_talks_through_is_not_heard():
    s = score([run([1.5, 2.9, 5.0])])
    assert s.false_ends == {"r": 1} and s.heard == {"r": 0}


def test_a_turn_end_inside_the_voice_is_false_and_a_skipped_utterance_end_missed():
    s = score([run([2.0, 5.0])])
    assert s.false_ends == {"r": 1} and s.heard == {"r": 0}
    assert s.missed == 1 and len(s.latencies) == 1
    assert s.pauses_ended == {(0.7, 1.0): [0, 1], (1.0, 60.0): [0, 1]}


def test_a_cut_recording_has_no_ground_truth_after_its_last_voice():
    s = score([run([2.9, 5.0], cut=True)])
    assert s.false_ends == {"r": 0} and s.missed == 0 and len(s.latencies) == 1


@pytest.mark.timeout(180)
def test_the_quick_run_reports_every_figure(tmp_path):
    out = tmp_path / "TURNS.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench.turns", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = out.read_text()
    assert report in result.stdout  # printed as written
    timeouts = ["speech timeout 0.2 s", "speech timeout 0.4 s", "speech timeout 0.8 s"]
    smart = [
        "Smart Turn: 0.2 s finished, 1.5 s not",
        "Smart Turn: 0.3 s finished, 1 s not",
        "Smart Turn: 0.3 s finished, 1 s if p < 0.1, else 0.4 s (ours)",
        "Smart Turn: 0.3 s finished, 1 s if p < 0.1, else 0.4 s, sound alone",
    ]
    latency = rows(report, "End of speech")
    for label in timeouts + smart:
        assert all(re.fullmatch(r"\d+( of \d+)?", cell) for cell in latency[label]), label
    p50s = [int(latency[label][0]) for label in timeouts]
    assert p50s == sorted(p50s) and p50s[0] >= 200  # the timer is in them
    for title in ("False turn ends", "Every pause", "The short recordings", "Smart Turn's"):
        table = rows(report, title)
        assert table and all(re.search(r"\d", c) for cells in table.values() for c in cells)
    costs = rows(report, "What Smart Turn costs")
    analyzers = ["`LocalSmartTurnAnalyzerV3`", "`SharedSmartTurnAnalyzerV3`"]
    blas = ["`OPENBLAS_NUM_THREADS=1`", "`OPENBLAS_NUM_THREADS=unset`"]
    for label in analyzers + blas:
        assert all(re.search(r"\d", cell) for cell in costs[label]), label
    pipecats, ours = (float(costs[label][2]) for label in analyzers)  # PSS per extra call
    assert ours < pipecats / 3
    assert "By the rule" in report and "CPU-s" in report and "Ground truth" in report


def rows(report: str, title: str) -> dict[str, list[str]]:
    """The body rows (first cell → the others) of the tables under the `## {title}…` heading."""
    section = next(part for part in report.split("\n## ") if part.startswith(title))
    lines = [line for line in section.splitlines() if line.startswith("|")]
    separators = {k for k, line in enumerate(lines) if "---" in line}
    body = [line for k, line in enumerate(lines) if not {k, k + 1} & separators]
    cells = [[cell.strip() for cell in line.split("|")[1:-1]] for line in body]
    return {row[0]: row[1:] for row in cells}
