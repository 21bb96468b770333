"""One HTTP tool call: the URL, the signature, the request; its answer or failure as a result."""

import json

from pipelines.provider import ProviderAccess
from pipelines.tools import HttpTool
from server.http_tool import build_request, call_tool, fill_url, signature
from standins.booking_service import API_KEY_HEADER, BookingServiceStandIn

SECRET, KEY = "booking-secret", "booking-key"
ACCESS = ProviderAccess({"BOOKING_SECRET": SECRET, "BOOKING_KEY": KEY})
ASKED = {"date": "tomorrow", "party_size": 2, "time": "19:00"}


def tool(url: str, **options) -> HttpTool:
    properties = {"date": {"type": "string"}, "party_size": {"type": "integer"}}
    properties["time"] = {"type": "string"}
    return HttpTool(
        name="check_availability",
        description="Check a table.",
        url=url,
        parameters={"properties": properties, "required": ["date", "party_size"]},
        headers={API_KEY_HEADER: "BOOKING_KEY"},
        secret_env="BOOKING_SECRET",
        **options,
    )


def test_arguments_fill_the_url_encoded():
    template = "https://b.example/days/{date}/tables?party={party}&note={note}"
    arguments = {"date": "next Friday", "party": 2, "note": "a/b&c=d é"}
    assert fill_url(template, arguments) == (
        "https://b.example/days/next%20Friday/tables?party=2&note=a%2Fb%26c%3Dd%20%C3%A9"
    )


def test_the_signature_is_the_hex_hmac_sha256_of_the_body():
    # openssl dgst -sha256 -hmac shh <<< '{"date":"tomorrow","party_size":2}' (no newline)
    assert signature("shh", b'{"date":"tomorrow","party_size":2}') == (
        "sha256=df8617f4b8cb4b34591ed60655b68b66f322744c83c18c80f9d79e0ebd472b30"
    )


def test_a_post_sends_the_arguments_as_signed_json_with_the_declared_headers():
    request = build_request(tool("https://b.example/availability/{date}"), ASKED, ACCESS)
    assert (request.method, request.url) == ("POST", "https://b.example/availability/tomorrow")
    assert request.body == b'{"date":"tomorrow","party_size":2,"time":"19:00"}'
    assert request.headers == {
        API_KEY_HEADER: KEY,
        "Content-Type": "application/json",
        "X-Bot-Signature": signature(SECRET, request.body),
    }


async def test_the_answer_comes_back_as_the_services_json():
    async with BookingServiceStandIn(secret=SECRET, api_key=KEY) as service:
        result = await call_tool(tool(f"{service.http_url}/availability/{{date}}"), ASKED, ACCESS)
    assert result == service.answers[0]
    assert result["message"] == "A table for 2 is free tomorrow at 19:00."
    assert service.requests[0].signed and service.requests[0].status == 200


async def test_a_wrong_secret_is_refused_by_the_service_and_said_as_an_error():
    wrong = ProviderAccess({"BOOKING_SECRET": "not-the-secret", "BOOKING_KEY": KEY})
    async with BookingServiceStandIn(secret=SECRET, api_key=KEY) as service:
        result = await call_tool(tool(f"{service.http_url}/availability/{{date}}"), ASKED, wrong)
    assert not service.requests[0].signed
    assert result["error"].startswith("the service answered HTTP 401")
    assert json.loads(result["detail"]) == {"error": "bad or missing X-Bot-Signature"}


async def test_a_failing_service_is_an_error_result():
    async with BookingServiceStandIn(secret=SECRET, api_key=KEY, status=503) as service:
        result = await call_tool(tool(f"{service.http_url}/availability/{{date}}"), ASKED, ACCESS)
    assert result["error"].startswith("the service answered HTTP 503")


async def test_a_service_that_is_down_is_an_error_result():
    service = BookingServiceStandIn(secret=SECRET, api_key=KEY)
    async with service:
        url = f"{service.http_url}/availability/{{date}}"
    result = await call_tool(tool(url), ASKED, ACCESS)
    assert result["error"].startswith("the service could not be reached")


async def test_a_service_slower_than_the_timeout_is_given_up_on():
    async with BookingServiceStandIn(secret=SECRET, api_key=KEY, delay=5) as service:
        url = f"{service.http_url}/availability/{{date}}"
        result = await call_tool(tool(url, timeout_secs=0.3), ASKED, ACCESS)
    assert result["error"].startswith("the service did not answer within 0.3 s")
    assert service.answers == []


async def test_a_missing_required_argument_is_asked_for_without_a_request():
    async with BookingServiceStandIn(secret=SECRET, api_key=KEY) as service:
        url = f"{service.http_url}/availability/{{date}}"
        result = await call_tool(tool(url), {"date": "tomorrow"}, ACCESS)
    assert result == {"error": "missing argument(s): party_size; ask the caller"}
    assert service.requests == []
