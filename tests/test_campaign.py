"""The campaign's own rules, against a fake operator API: the limit, retries, a full server."""

import asyncio

import pytest

from dialer import campaign as campaign_module
from dialer.api import APIError, CallEnd
from dialer.campaign import Campaign, Retries
from dialer.numbers import Target


class FakeAPI:
    """The operator API as the campaign uses it; each number's outcomes, attempt by attempt."""

    def __init__(self, outcomes: dict[str, list[str]], *, capacity=None, full_first=0):
        self.outcomes = outcomes
        self.max_calls = capacity
        self.full_first = full_first  # the first N places are refused: the server is full
        self.live = self.most_live = 0
        self.placed: list[str] = []

    async def capacity(self):
        return self.max_calls

    async def place(self, to, *, pipeline=None, variables=None):
        if self.full_first:
            self.full_first -= 1
            raise APIError(503, "no call placed: 8 calls in progress (MAX_CALLS 8)")
        self.placed.append(to)
        self.live += 1
        self.most_live = max(self.most_live, self.live)
        return f"CA{len(self.placed):032x}"

    async def ended(self, call_sid):
        await asyncio.sleep(0.05)
        self.live -= 1
        to = self.placed[int(call_sid[2:], 16) - 1]
        outcome = self.outcomes[to].pop(0)
        return CallEnd(call_sid, outcome, "completed", None, 1)


TWICE = Retries(2, 0.01)


def run(api: FakeAPI, numbers: list[str], concurrency: int, retries: Retries = TWICE):
    lines: list[str] = []
    campaign = Campaign(api, concurrency=concurrency, retries=lambda _: retries, say=lines.append)
    attempts = asyncio.run(campaign.run([Target(to) for to in numbers]))
    return attempts, lines


def test_never_more_calls_at_once_than_the_concurrency_nor_the_servers_limit():
    numbers = [f"+1555010000{n}" for n in range(8)]
    api = FakeAPI({to: ["answered"] for to in numbers})
    attempts, _ = run(api, numbers, concurrency=3)
    assert api.most_live == 3 and len(attempts) == 8

    api = FakeAPI({to: ["answered"] for to in numbers}, capacity=2)
    _, lines = run(api, numbers, concurrency=3)
    assert api.most_live == 2
    assert lines[0] == "the server takes 2 calls at once (MAX_CALLS): 2 at a time"


def test_busy_and_unanswered_numbers_are_retried_as_declared_and_nothing_else_is():
    api = FakeAPI(
        {
            "+15550100001": ["busy", "no answer", "answered"],
            "+15550100002": ["no answer", "no answer", "no answer"],
            "+15550100003": ["failed"],
            "+15550100004": ["voicemail"],
        }
    )
    attempts, _ = run(api, list(api.outcomes), concurrency=2)
    final = {a.target.to: (a.number, a.outcome) for a in attempts}
    assert final == {
        "+15550100001": (3, "answered"),
        "+15550100002": (3, "no answer"),
        "+15550100003": (1, "failed"),
        "+15550100004": (1, "voicemail"),
    }
    assert len(api.placed) == 8


def test_a_full_server_is_waited_for_without_counting_an_attempt(monkeypatch):
    monkeypatch.setattr(campaign_module, "FULL_SERVER_WAIT_SECS", 0.01)
    api = FakeAPI({"+15550100001": ["answered"]}, full_first=3)
    attempts, lines = run(api, ["+15550100001"], concurrency=1)
    assert [(a.number, a.outcome) for a in attempts] == [(1, "answered")]
    assert lines == ["[1/1] +15550100001  answered (attempt 1 of 3, CA" + "0" * 31 + "1)"]


def test_a_refused_call_is_recorded_as_failed_with_the_reason():
    class Refusing(FakeAPI):
        async def place(self, to, **kwargs):
            raise APIError(400, "to: must be an E.164 number")

    attempts, _ = run(Refusing({}), ["555"], concurrency=1)
    assert [(a.outcome, a.error) for a in attempts] == [
        ("failed", "HTTP 400: to: must be an E.164 number")
    ]


def test_a_concurrency_below_one_is_refused():
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        Campaign(FakeAPI({}), concurrency=0, retries=lambda _: Retries(0, 0))
