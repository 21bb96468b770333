"""The operator API's refusals: no token, bad input, Twilio failing; and unsigned reports."""

import httpx
import pytest

from pipelines.declaration import load_declarations
from server.local import serve_locally
from server.twilio_rest import RetryPolicy

TOKEN = "test-api-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ADA = {"to": "+15550123456", "variables": {"name": "Ada"}}


@pytest.fixture
async def bot(standins, declarations):
    env = standins.env() | {"API_TOKEN": TOKEN, "TWILIO_PHONE_NUMBER": "+15550100000"}
    async with serve_locally(env, declarations) as running:
        yield running


@pytest.fixture
async def client(bot):
    async with httpx.AsyncClient(base_url=bot.url) as client:
        yield client


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}]
)
async def test_a_request_without_the_bearer_token_is_refused_with_401(client, standins, headers):
    placed = await client.post("/calls", json=ADA, headers=headers)
    followed = await client.get("/calls/CA" + "0" * 32 + "/status", headers=headers)

    assert placed.status_code == followed.status_code == 401
    assert placed.headers["WWW-Authenticate"] == "Bearer"
    assert standins.twilio.requests == []


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"to": "555-0123"}, "to: must be an E.164 number like +15551230000, or a sip: address"),
        ({"to": "+15550123456"}, "variables: pipeline 'default' says {name} in its outbound lines"),
        ({**ADA, "pipeline": "nope"}, "pipeline: 'nope' is not a pipeline this server runs"),
        ({**ADA, "pipeline": "spanish"}, "spanish.toml declares no [bot] outbound_greeting"),
        ({**ADA, "from": "+15550000000"}, "from: unknown field; the fields are: to, pipeline"),
        ({**ADA, "variables": {"first name": "Ada"}}, "variable names must be identifiers"),
        ({**ADA, "variables": {"name": "A" * 500}}, "variables take 511 characters as JSON"),
        ([], "body: Input should be a valid dictionary"),
    ],
)
async def test_bad_input_gets_400_naming_the_problem_and_places_no_call(
    client, standins, body, problem
):
    response = await client.post("/calls", json=body, headers=AUTH)

    assert response.status_code == 400
    assert problem in response.json()["error"]
    assert standins.twilio.created == []


async def test_a_body_that_is_not_json_gets_400(client):
    response = await client.post("/calls", content=b"to=+1555", headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"].startswith("the body is not JSON")


async def test_twilio_failing_to_create_the_call_gets_502_with_its_reason(client, standins):
    standins.twilio.fail_next = 1
    response = await client.post("/calls", json=ADA, headers=AUTH)
    assert response.status_code == 502
    assert "HTTP 500" in response.json()["error"]


async def test_twilio_not_answering_the_create_gets_502_within_the_attempt_timeout(
    bot, client, standins
):
    bot.app.state.twilio.retry = RetryPolicy(attempt_timeout=0.5)
    standins.twilio.hang_next = 1
    response = await client.post("/calls", json=ADA, headers=AUTH)
    assert response.status_code == 502
    assert "could not place a call: Twilio unreachable (TimeoutError())" in response.json()["error"]


async def test_following_a_call_twilio_does_not_know_gets_404(client):
    response = await client.get("/calls/CA" + "1" * 32 + "/status", headers=AUTH)
    assert response.status_code == 404
    malformed = await client.get("/calls/../../etc/status", headers=AUTH)
    assert malformed.status_code in (400, 404)


@pytest.mark.parametrize("path", ["/twilio/status", "/twilio/amd", "/twilio/recording"])
async def test_an_unsigned_report_on_a_call_is_forbidden(client, path):
    form = {"CallSid": "CA" + "2" * 32, "AnsweredBy": "machine_end_beep", "CallStatus": "busy"}
    response = await client.post(path, data=form, headers={"X-Twilio-Signature": "forged"})
    assert response.status_code == 403


async def test_without_api_token_the_api_is_off(standins):
    async with (
        serve_locally(standins.env(), load_declarations()) as bot,
        httpx.AsyncClient(base_url=bot.url) as client,
    ):
        response = await client.post("/calls", json=ADA, headers=AUTH)
    assert response.status_code == 404
    assert standins.twilio.requests == []


async def test_without_a_number_to_call_from_no_call_is_placed_and_the_503_says_why(standins):
    async with (
        serve_locally(standins.env() | {"API_TOKEN": TOKEN}, load_declarations()) as bot,
        httpx.AsyncClient(base_url=bot.url) as client,
    ):
        response = await client.post("/calls", json=ADA, headers=AUTH)
        records = await client.get("/calls", headers=AUTH)
    assert response.status_code == 503
    assert "TWILIO_PHONE_NUMBER is not set" in response.json()["error"]
    assert standins.twilio.requests == []
    assert records.status_code == 200, "the records API works without it"
