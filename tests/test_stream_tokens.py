"""Stream tokens: one call, one use, a minute at most, and only ours."""

import asyncio
import multiprocessing
import time
from pathlib import Path

import pytest

from server.stream_tokens import ClaimedSids, StreamTokenError, StreamTokens

SID = "CA" + "a" * 32


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def tokens(clock: Clock, directory, token: str = "auth-token") -> StreamTokens:
    return StreamTokens(token, claim=ClaimedSids(directory, clock), ttl_secs=60, clock=clock)


async def test_a_token_redeems_once_for_its_call(tmp_path):
    clock = Clock()
    issuer = tokens(clock, tmp_path)
    token = issuer.issue(SID)
    assert await issuer.redeem(token) == SID
    with pytest.raises(StreamTokenError, match="already used .* a replay"):
        await issuer.redeem(token)
    with pytest.raises(StreamTokenError, match="already used"):
        await issuer.redeem(issuer.issue(SID))  # a replayed webhook gets a fresh token: same call


async def test_a_token_expires(tmp_path):
    clock = Clock()
    issuer = tokens(clock, tmp_path)
    token = issuer.issue(SID)
    clock.now += 61
    with pytest.raises(StreamTokenError, match="expired"):
        await issuer.redeem(token)


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: t.replace(SID, "CA" + "b" * 32),  # another call
        lambda t: t.rsplit(".", 2)[0] + ".9999999999." + t.rsplit(".", 1)[1],  # later expiry
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # another MAC
        lambda t: "",
        lambda t: "....",
        lambda t: "CA1.x.y",
    ],
)
async def test_a_forged_or_altered_token_is_refused(forge, tmp_path):
    issuer = tokens(Clock(), tmp_path)
    with pytest.raises(StreamTokenError, match="did not issue"):
        await issuer.redeem(forge(issuer.issue(SID)))


async def test_a_token_from_a_server_with_another_auth_token_is_refused(tmp_path):
    clock = Clock()
    with pytest.raises(StreamTokenError, match="did not issue"):
        await tokens(clock, tmp_path).redeem(tokens(clock, tmp_path, "other-token").issue(SID))


async def test_claims_are_forgotten_once_their_tokens_expire(tmp_path):
    clock = Clock()
    claimed = ClaimedSids(tmp_path, clock)
    assert await claimed(SID, clock.now + 60) and not await claimed(SID, clock.now + 60)
    clock.now += 61
    assert await claimed(SID, clock.now + 60)
    for n in range(200):  # expired claim files are cleaned up as claims go on
        clock.now += 61
        await claimed(f"CA{n:032x}", clock.now + 60)
    assert len(list(tmp_path.iterdir())) < 101


def _claim_in_another_process(directory: str, queue) -> None:
    queue.put(asyncio.run(ClaimedSids(Path(directory))(SID, time.time() + 60)))


def test_a_claim_holds_across_processes(tmp_path):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [
        context.Process(target=_claim_in_another_process, args=(str(tmp_path), queue))
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    results = [queue.get(timeout=60) for _ in processes]
    for process in processes:
        process.join()
    assert sorted(results) == [False, False, False, True]
