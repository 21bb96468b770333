"""Recorded speech shipped with the project.

What the stand-in recognizer knows by its audio, what the terminal call says by default, and
the real speech the benchmarks play.
"""

from pathlib import Path

RECORDINGS = Path(__file__).parent


def recording(name: str) -> Path:
    """The recording `name` (e.g. "book_table.wav", "es/horario.wav")."""
    path = RECORDINGS / name
    if not path.is_file():
        raise FileNotFoundError(f"no recording {name!r} in {RECORDINGS}")
    return path
