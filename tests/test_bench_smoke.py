"""The benchmark's smoke run (one short pass of everything, both bots): it must not rot.

No timing is asserted: figures are for BENCHMARKS.md, not for pass or fail.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.timeout(900)
def test_the_benchmark_smoke_run_reports_every_figure_for_both_bots(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = out.read_text()
    for section in ("Side by side", "stage by stage", "Capacity", "Soak"):
        assert f"## {section}" in report or section in report
    rows = {
        line.split("|")[1].strip(): line for line in report.splitlines() if line.count("|") >= 4
    }
    for figure in (
        "reply latency p95 (ms)",
        "reply overhead p95 (ms)",
        "barge-in: onset → `clear` p95 (ms)",
        "greeting: `start` → first audio p50 (ms)",
        "calls at the knee (this machine)",
        "CPU seconds per call-minute",
        "resident memory per call (MB, PSS), worst level",
        "soak: asyncio tasks",
    ):
        cells = [c.strip() for c in rows[figure].split("|")[2:4]]
        assert all(re.search(r"\d", c) for c in cells), f"{figure}: {cells}"
