"""A transfer nobody answers: the caller is told, and is back on the bot, call going on."""

from harness.faults.transfer import nobody_answers


async def test_a_warm_transfer_nobody_answers_brings_the_caller_back_to_the_bot():
    run = await nobody_answers()

    assert run.outcome.survived, run.outcome.problems
    call = run.call
    assert call is not None
    (stopped,) = call.events("closed")[:1]
    assert stopped.detail == "Twilio stopped the stream: the call was redirected"
    (stream,) = call.events("stream")
    assert stream.t > stopped.t, "a new stream for the same call, after the first stopped"
    assert call.parameters["unanswered_transfer"] == "manager"
    assert run.outcome.heard[0] == "Thanks for calling Luigi's. How can I help you today?"
