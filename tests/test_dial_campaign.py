"""`python bot.py dial`: a ten-number CSV campaign at concurrency 3, and one call, end to end."""

import asyncio
import csv
import os
import sys
from pathlib import Path

import pytest

from pipelines.declaration import PIPELINES_DIR, load_declarations
from recordings import RECORDINGS
from server.local import serve_locally
from standins.callee import Callee

API_TOKEN = "test-api-token-0123456789"
BOT_PY = Path(__file__).parent.parent / "bot.py"
GOODBYE = (RECORDINGS / "goodbye.wav",)
PERSON = Callee(answers=("person",), says=GOODBYE)  # listens to the greeting, says goodbye
# Ten numbers: who answers each, attempt by attempt.
CALLEES = {
    "+15550100001": PERSON,
    "+15550100002": Callee(answers=("voicemail",)),
    "+15550100003": Callee(answers=("busy", "person"), says=GOODBYE),
    "+15550100004": PERSON,
    "+15550100005": Callee(answers=("no-answer",)),
    "+15550100006": Callee(answers=("voicemail",)),
    "+15550100007": PERSON,
    "+15550100008": Callee(answers=("failed",)),
    "+15550100009": Callee(answers=("voicemail",)),
    "+15550100010": PERSON,
}


@pytest.fixture
def pipelines(tmp_path) -> Path:
    """The shipped pipelines, the default retrying busy and unanswered numbers twice, fast."""
    directory = tmp_path / "pipelines"
    directory.mkdir()
    for path in PIPELINES_DIR.glob("*.toml"):
        text = path.read_text()
        if path.name == "default.toml":
            text = text.replace("retry_delay_secs = 60", "retry_delay_secs = 0.5")
        (directory / path.name).write_text(text)
    return directory


@pytest.fixture
def declarations(pipelines) -> dict:
    return load_declarations(pipelines)


@pytest.fixture
async def bot(standins, declarations):
    env = standins.env() | {"API_TOKEN": API_TOKEN, "TWILIO_PHONE_NUMBER": "+15550100000"}
    async with serve_locally(env, declarations) as running:
        yield running


async def dial(bot, pipelines: Path, *args: str, cwd: Path) -> tuple[int, str]:
    """Run `python bot.py dial …` as its own process against `bot`; (exit code, output)."""
    env = os.environ | {
        "PUBLIC_URL": bot.url,
        "API_TOKEN": API_TOKEN,
        "PIPELINES_DIR": str(pipelines),
        "LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(BOT_PY), "dial", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


def most_live_at_once(standins) -> int:
    """The most calls Twilio's stand-in had at once, from their creation to their end."""
    changes = []
    for call_sid in standins.twilio.created:
        created, ended = standins.twilio.lifetime(call_sid)
        changes += [(created, 1), (ended if ended is not None else float("inf"), -1)]
    live = most = 0
    for _, change in sorted(changes):  # at a tie, an end comes before a creation
        live += change
        most = max(most, live)
    return most


@pytest.mark.timeout(240)
async def test_a_ten_number_campaign_at_concurrency_three_ends_with_every_outcome_and_a_summary(
    bot, standins, pipelines, tmp_path
):
    standins.twilio.callees.update(CALLEES)
    numbers = tmp_path / "numbers.csv"
    rows = [f"{to},Guest {n}" for n, to in enumerate(CALLEES, start=1)]
    numbers.write_text("\n".join(["to,name", *rows]) + "\n")

    code, output = await dial(
        bot, pipelines, "--csv", str(numbers), "--concurrency", "3", cwd=tmp_path
    )

    assert code == 0, output
    summary = "10 numbers, 13 calls: 5 answered, 3 voicemail, 0 busy, 1 no answer, 1 failed"
    assert summary in output.splitlines()
    progress = [line for line in output.splitlines() if line.startswith("[")]
    assert len(progress) == 13
    assert any("+15550100003  busy (attempt 1 of 3" in line for line in progress)
    assert any("+15550100003  answered (attempt 2 of 3" in line for line in progress)
    assert any("+15550100005  no answer (attempt 3 of 3" in line for line in progress)
    with (tmp_path / "numbers.results.csv").open() as file:
        recorded = list(csv.DictReader(file))
    assert [(r["to"], r["outcome"]) for r in recorded if r["to"] == "+15550100005"] == [
        ("+15550100005", "no answer")
    ] * 3
    assert {r["outcome"] for r in recorded} == {
        "answered", "voicemail", "busy", "no answer", "failed",
    }  # fmt: skip
    assert len(standins.twilio.created) == 13
    assert most_live_at_once(standins) == 3  # three at once, never more


async def test_one_call_from_the_command_line_reports_its_outcome(
    bot, standins, pipelines, tmp_path
):
    standins.twilio.callees["+15550100001"] = PERSON
    code, output = await dial(bot, pipelines, "+15550100001", "--var", "name=Ada", cwd=tmp_path)

    assert code == 0, output
    assert "1 numbers, 1 calls: 1 answered, 0 voicemail" in output
    [create] = [r for r in standins.twilio.requests if r.path.endswith("/Calls.json")]
    assert "%22name%22%3A%22Ada%22" in create.form["Url"]
