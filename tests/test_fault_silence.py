"""A silent caller is prompted, then told goodbye and hung up on; a call too long is ended.

The scenarios (harness/faults/silence.py) shorten the `[call]` limits to 2 s, 2 s and 10 s.
"""

from harness.faults.silence import (
    BOOKING_REPLY,
    GOODBYE,
    GOODBYE_SECS,
    GREETING,
    LONG_REPLY,
    MAX_SECS,
    PROMPT,
    PROMPT_SECS,
    TIME_UP,
    SilenceRun,
    answer_the_prompt,
    judge_answered,
    judge_long_reply,
    judge_silent,
    judge_too_long,
    keep_talking,
    long_reply,
    stay_silent,
)
from processors.call_time_limit import TIME_UP_REASON
from processors.silent_caller import SILENCE_REASON


def texts(run: SilenceRun) -> list[str]:
    return [line.text for line in run.lines]


def infos(run: SilenceRun) -> list[str]:
    return [message for _, message in run.logs]


async def test_a_silent_caller_is_prompted_after_the_greeting_played_then_hung_up_on():
    run = judge_silent(await stay_silent())
    print(run.outcome.figures)

    assert run.outcome.survived, run.outcome.problems
    assert texts(run) == [GREETING, PROMPT, GOODBYE]
    greeting, prompt, goodbye = run.lines
    # Counted from when the greeting finished playing at the phone, not from when it was sent.
    assert PROMPT_SECS - 0.1 <= prompt.start - greeting.end <= PROMPT_SECS + 1.5
    assert GOODBYE_SECS - 0.1 <= goodbye.start - prompt.end <= GOODBYE_SECS + 1.5
    assert run.hangup_at is not None and run.hangup_at >= goodbye.end - 0.05
    assert run.closed_at is not None and run.closed_at >= goodbye.end - 0.05
    assert run.context == [("assistant", GREETING), ("assistant", PROMPT), ("assistant", GOODBYE)]
    assert f"ending the call: {SILENCE_REASON}" in infos(run)


async def test_a_caller_who_answers_the_prompt_is_answered_and_the_count_starts_over():
    run = judge_answered(await answer_the_prompt())
    print(run.outcome.figures)

    assert run.outcome.survived, run.outcome.problems
    assert texts(run) == [GREETING, PROMPT, BOOKING_REPLY, PROMPT], "a prompt again, no goodbye"
    assert GOODBYE not in run.outcome.heard and run.hangup_at is None
    # The prompt is in the conversation the LLM answered, as bot speech.
    assert run.context[:4] == [
        ("assistant", GREETING),
        ("assistant", PROMPT),
        ("user", "Hi, I'd like to book a table for two tomorrow at seven."),
        ("assistant", BOOKING_REPLY),
    ]
    reply, again = run.lines[2:]
    assert PROMPT_SECS - 0.1 <= again.start - reply.end <= PROMPT_SECS + 1.5


async def test_a_long_reply_is_not_counted_as_silence():
    run = judge_long_reply(await long_reply())
    print(run.outcome.figures)

    assert run.outcome.survived, run.outcome.problems
    assert texts(run) == [GREETING, LONG_REPLY, PROMPT]
    reply, prompt = run.lines[1:]
    assert reply.end - reply.start > 5 * PROMPT_SECS
    assert prompt.start - reply.end >= PROMPT_SECS - 0.1


async def test_a_call_reaching_its_time_limit_is_cut_short_with_time_up_and_hung_up():
    run = judge_too_long(await keep_talking())
    print(run.outcome.figures)

    assert run.outcome.survived, run.outcome.problems
    time_up = run.lines[-1]
    assert time_up.text == TIME_UP
    assert MAX_SECS <= time_up.start <= MAX_SECS + 2.5
    assert run.hangup_at is not None and run.hangup_at >= time_up.end - 0.05
    assert run.closed_at is not None
    assert ("WARNING", f"the call reached its time limit of {MAX_SECS:g} s: ending it") in run.logs
    assert f"ending the call: {TIME_UP_REASON}" in infos(run)
    assert run.context[-1] == ("assistant", TIME_UP)
    assert PROMPT not in run.outcome.heard


async def test_a_silent_caller_on_the_speech_to_speech_pipeline_is_prompted_then_hung_up_on():
    run = judge_silent(await stay_silent("realtime"))
    print(run.outcome.figures)

    assert run.outcome.survived, run.outcome.problems
    assert texts(run) == [GREETING, PROMPT, GOODBYE]
    assert run.context == [("assistant", GREETING), ("assistant", PROMPT), ("assistant", GOODBYE)]


async def test_a_call_on_the_speech_to_speech_pipeline_is_ended_at_its_time_limit():
    run = judge_too_long(await keep_talking("realtime"))
    print(run.outcome.figures)

    assert run.outcome.survived, run.outcome.problems
    assert run.lines[-1].text == TIME_UP
    assert run.context[-1] == ("assistant", TIME_UP)
