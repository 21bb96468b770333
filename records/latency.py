"""A reply's latency from its milestones: the caller's voice ended … the first audio heard."""

from records.record import Stages


def reply_latency(
    voice_end: float,
    *,
    transcript: float | None,
    turn_end: float | None,
    first_token: float | None,
    first_audio: float | None,
    heard: float,
) -> tuple[int, Stages]:
    """`latency_ms` and its stages from the milestones' times (seconds, one clock).

    The milestones are taken in pipeline order; one that is missing or came before the
    one before it (a reply speculated ahead, a transcript in before the turn ended) adds 0;
    none is later than `heard`.
    """
    at, stages, done_ms = voice_end, [], 0
    for milestone in (transcript, turn_end, first_token, first_audio, heard):
        # The first audio is heard a chunk before its echo let it through: a milestone in
        # that chunk (the turn's end releasing a held reply) counts as reached at `heard`.
        at = min(max(at, milestone if milestone is not None else at), heard)
        reached_ms = round((at - voice_end) * 1000)  # rounded as it adds up: sums stay exact
        stages.append(reached_ms - done_ms)
        done_ms = reached_ms
    return round((heard - voice_end) * 1000), Stages(*stages)
