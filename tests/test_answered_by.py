"""Who answered an outbound call: verdicts handed from Twilio's report to the call's process."""

import asyncio

import pytest

from server.answered_by import AnsweredByBox, answerer

CALL = "CA" + "3" * 32


@pytest.mark.parametrize(
    ("answered_by", "kind"),
    [
        ("human", "person"),
        ("unknown", "person"),
        (None, "person"),
        ("machine_start", "machine"),
        ("machine_end_beep", "machine"),
        ("machine_end_silence", "machine"),
        ("machine_end_other", "machine"),
        ("fax", "fax"),
    ],
)
def test_unknown_and_no_verdict_are_a_person(answered_by, kind):
    assert answerer(answered_by) == kind


async def test_a_verdict_posted_by_one_process_is_collected_once_by_the_calls(tmp_path):
    poster, waiter = AnsweredByBox(tmp_path), AnsweredByBox(tmp_path)  # two workers' views
    waiting = asyncio.create_task(waiter.wait(CALL, timeout=5))
    await asyncio.sleep(0.1)
    await poster.post(CALL, "machine_end_beep")
    assert await waiting == "machine_end_beep"
    assert await waiter.wait(CALL, timeout=0.1) is None  # collected: gone


async def test_a_verdict_that_came_before_the_stream_is_kept_and_a_malformed_one_is_unknown(
    tmp_path,
):
    box = AnsweredByBox(tmp_path)
    await box.post(CALL, "human")
    assert await box.wait(CALL, timeout=0) == "human"
    await box.post(CALL, "../../etc/passwd")
    assert await box.wait(CALL, timeout=0) == "unknown"


async def test_no_verdict_within_the_timeout_is_none(tmp_path):
    assert await AnsweredByBox(tmp_path).wait(CALL, timeout=0.2) is None
