"""nginx in front of three `python bot.py serve` instances sharing one PostgreSQL.

The scenarios run once, in order, on one cluster (harness.load_balancer, `make load-balancer`);
each is asserted in its own subtest, so every one that fails is reported.
"""

import pytest

from harness.load_balancer import GUARD_SECS, INSTANCES, MAX_CALLS, load_balanced_calls, report
from standins.script import BOOKING_REPLY, GREETING

pytestmark = pytest.mark.call

CONVERSATION = [GREETING, BOOKING_REPLY]


# A hang guard only: about 90 s on a quiet machine, longer when its 2 cores are shared.
@pytest.mark.timeout(300)
async def test_calls_through_nginx_share_the_instances_max_calls_and_survive_a_kill_and_a_drain(
    subtests,
):
    run = await load_balanced_calls()
    print(report(run))

    with subtests.test("1. calls spread over the instances, each heard its conversation"):
        assert len(run.spread.calls) == MAX_CALLS
        assert [call.heard for call in run.spread.calls] == [CONVERSATION] * MAX_CALLS
        # Dialed one after another, round-robin gives every instance a stream.
        assert set(run.spread.streams) == set(INSTANCES), run.spread.streams

    with subtests.test("2. the webhook answered by one instance, the stream by another"):
        # Each dialed alone: its webhook and its stream's upgrade were consecutive requests.
        assert all({c.webhook, c.stream} <= set(INSTANCES) for c in run.spread.calls)
        assert run.spread.split == run.spread.calls

    with subtests.test("3. the replayed media upgrade is refused by every instance"):
        assert run.replay.statuses == {name: 403 for name in [*INSTANCES, "nginx"]}

    with subtests.test("4. MAX_CALLS holds over all the instances in a burst"):
        burst = run.burst
        assert burst.count("admitted") == MAX_CALLS, burst.outcomes
        assert burst.count("busy") + burst.count("refused 503") == MAX_CALLS, burst.outcomes
        assert sum(burst.admitted_at.values()) == MAX_CALLS
        assert burst.server_calls == {name: MAX_CALLS for name in INSTANCES}

    with subtests.test("5. a SIGKILLed instance's calls end and free their places"):
        kill = run.kill
        assert kill.cut_off == [True], "its caller's socket was closed"
        assert kill.server_calls_before == len(INSTANCES)
        assert kill.freed_after is not None, f"server_calls stayed up {GUARD_SECS:g} s"
        assert kill.server_calls_after == len(INSTANCES) - 1
        assert [call.heard for call in kill.survivors] == [CONVERSATION] * (len(INSTANCES) - 1)
        assert all(call.stream != kill.killed for call in kill.survivors)
        assert kill.after is not None and kill.after.heard == [GREETING]

    with subtests.test("6. a draining instance is routed around while its call goes on"):
        drain = run.drain
        assert drain.health[0] == 503 and drain.health[1]["status"] == "draining"
        # nginx's passive checks alone do not see it: it answers webhooks busy (200) and
        # refuses streams (503, not retried): the reason for the readiness probe.
        unprobed = drain.unprobed
        assert set(unprobed) <= {"busy", "refused 503", "admitted"}, unprobed
        assert unprobed.count("busy") + unprobed.count("refused 503") >= 1, unprobed
        assert drain.taken_out_after is not None
        assert drain.held is not None and drain.held.heard == CONVERSATION
        assert [(c.webhook, c.stream) for c in drain.new_calls] == [(drain.kept, drain.kept)] * 2
        assert [call.heard for call in drain.new_calls] == [[GREETING]] * 2
        assert drain.exit_code == 0
