"""The database goes down mid-call: the call goes on, and its record is written when it is back."""

import pytest

from harness.faults.records import database_down_mid_call


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_the_database_down_mid_call_affects_no_call_and_loses_no_record(kind):
    run = await database_down_mid_call(kind)
    assert run.outcome.survived, run.outcome.problems
    assert run.held > 0 and run.record is not None
    assert [t["speaker"] for t in run.record["turns"]] == ["bot", "caller", "bot"]
    assert run.api_while_down == (200 if kind == "sqlite" else 503)
