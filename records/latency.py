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
    one before it (a reply speculated ahead, a transcript in before the turn ended) adds 0.
    """
    at, stages = voice_end, []
    for milestone in (transcript, turn_end, first_token, first_audio, heard):
        reached = max(at, milestone if milestone is not None else at)
        stages.append(round((reached - at) * 1000))
        at = reached
    latency = round((heard - voice_end) * 1000)
    stages[-1] += latency - sum(stages)  # rounding: the stages add up to the latency
    return latency, Stages(*stages)
