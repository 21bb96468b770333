"""Stream tokens: one call, one use, a minute at most, and only ours."""

import pytest

from server.stream_tokens import ClaimedSids, StreamTokenError, StreamTokens

SID = "CA" + "a" * 32


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def tokens(clock: Clock, token: str = "auth-token") -> StreamTokens:
    return StreamTokens(token, claim=ClaimedSids(clock), ttl_secs=60, clock=clock)


def test_a_token_redeems_once_for_its_call():
    clock = Clock()
    issuer = tokens(clock)
    token = issuer.issue(SID)
    assert issuer.redeem(token) == SID
    with pytest.raises(StreamTokenError, match="already used .* a replay"):
        issuer.redeem(token)
    with pytest.raises(StreamTokenError, match="already used"):
        issuer.redeem(issuer.issue(SID))  # a replayed webhook gets a fresh token: same call


def test_a_token_expires():
    clock = Clock()
    issuer = tokens(clock)
    token = issuer.issue(SID)
    clock.now += 61
    with pytest.raises(StreamTokenError, match="expired"):
        issuer.redeem(token)


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
def test_a_forged_or_altered_token_is_refused(forge):
    issuer = tokens(Clock())
    with pytest.raises(StreamTokenError, match="did not issue"):
        issuer.redeem(forge(issuer.issue(SID)))


def test_a_token_from_a_server_with_another_auth_token_is_refused():
    clock = Clock()
    with pytest.raises(StreamTokenError, match="did not issue"):
        tokens(clock).redeem(tokens(clock, "other-token").issue(SID))


def test_claims_are_forgotten_once_their_tokens_expire():
    clock = Clock()
    claimed = ClaimedSids(clock)
    assert claimed(SID, clock.now + 60) and not claimed(SID, clock.now + 60)
    clock.now += 61
    assert claimed(SID, clock.now + 60)
