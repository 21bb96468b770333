"""The AMD callback never coming: the callee is taken for a person once the verdict is overdue."""

from harness.faults.outbound import FAREWELL, GREETING, verdict_never_comes


async def test_a_lost_machine_verdict_greets_the_callee_as_a_person_and_the_call_goes_on():
    run = await verdict_never_comes()

    assert run.outcome.survived, run.outcome.problems
    assert run.outcome.heard == [GREETING, FAREWELL]
    assert run.amd_posts == 0
    assert any("no answering-machine verdict within 8 s" in line for line in run.logs)
    assert run.status == "completed"
