"""Who may use the console and place browser calls: the API_TOKEN, as a bearer or its cookie."""

import httpx
import pytest
from starlette.requests import HTTPConnection
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from server.console_auth import COOKIE, ConsoleAuth

TOKEN = "console-auth-token-0123456789"
PUBLIC = "https://bot.example.com"


def _connection(headers: dict[str, str], scheme: str = "wss") -> HTTPConnection:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {"type": "websocket", "scheme": scheme, "path": "/media/x", "headers": raw}
    scope |= {"server": ("bot.example.com", 443), "query_string": b""}
    return HTTPConnection(scope)


def test_the_bearer_must_be_the_token():
    auth = ConsoleAuth(TOKEN, PUBLIC)
    assert auth.bearer_ok(_connection({"Authorization": f"Bearer {TOKEN}"}))
    assert auth.bearer_ok(_connection({"Authorization": f"bearer  {TOKEN}"}))
    assert not auth.bearer_ok(_connection({"Authorization": f"Basic {TOKEN}"}))
    assert not auth.bearer_ok(_connection({"Authorization": "Bearer wrong"}))
    assert not auth.bearer_ok(_connection({}))


def test_no_token_set_lets_nobody_in():
    auth = ConsoleAuth(None, PUBLIC)
    assert not auth.enabled
    assert not auth.bearer_ok(_connection({"Authorization": "Bearer "}))
    assert not auth.cookie_ok(_connection({"Cookie": f"{COOKIE}="}))


def test_a_browser_call_needs_the_cookie_from_the_servers_own_origin():
    auth = ConsoleAuth(TOKEN, PUBLIC)
    cookie = f"{COOKIE}={TOKEN}"
    assert auth.browser_call_ok(_connection({"Cookie": cookie, "Origin": PUBLIC}))
    assert not auth.browser_call_ok(
        _connection({"Cookie": cookie, "Origin": "https://evil.example"})
    )
    assert not auth.browser_call_ok(_connection({"Cookie": cookie}))
    assert not auth.browser_call_ok(_connection({"Cookie": f"{COOKIE}=guess", "Origin": PUBLIC}))
    # Opened where it is served (a local run behind a tunnel): the page's own origin.
    local = {"Cookie": cookie, "Origin": "http://localhost:8765", "Host": "localhost:8765"}
    assert auth.browser_call_ok(_connection(local, scheme="ws"))


@pytest.fixture
async def console_bot(standins, declarations):
    """The real server with API_TOKEN set."""
    from server.local import serve_locally

    async with serve_locally(standins.env() | {"API_TOKEN": TOKEN}, declarations) as running:
        yield running


async def test_the_console_is_off_without_an_api_token(bot):
    async with httpx.AsyncClient(base_url=bot.url) as http:
        page = await http.get("/console")
        assert (page.status_code, page.text) == (404, "the console is off: set API_TOKEN")
        refused = await http.post("/console/session", headers={"Authorization": "Bearer x"})
        assert refused.status_code == 401


async def test_logging_in_keeps_the_token_in_a_strict_same_site_cookie(console_bot):
    async with httpx.AsyncClient(base_url=console_bot.url) as http:
        assert (await http.get("/console")).headers["content-type"].startswith("text/html")
        wrong = await http.post("/console/session", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert "set-cookie" not in wrong.headers
        right = await http.post("/console/session", headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 204
        cookie = right.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}={TOKEN};")
        assert "SameSite=strict" in cookie and "Path=/" in cookie


async def test_a_browser_call_is_issued_only_with_the_token_and_for_a_served_pipeline(
    console_bot, declarations
):
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=console_bot.url) as http:
        assert (await http.get("/console/pipelines")).status_code == 401
        served = (await http.get("/console/pipelines", headers=bearer)).json()["pipelines"]
        assert served == sorted(declarations)  # the stand-ins give every provider a key
        assert (await http.post("/console/calls", json={"pipeline": "default"})).status_code == 401
        unknown = await http.post("/console/calls", json={"pipeline": "nope"}, headers=bearer)
        assert unknown.status_code == 400
        assert (
            unknown.json()["error"] == f"'pipeline' must be one of {', '.join(served)}; got 'nope'"
        )
        issued = await http.post("/console/calls", json={"pipeline": "spanish"}, headers=bearer)
    assert issued.status_code == 201
    call = issued.json()
    assert call["stream_path"].startswith("/media/")
    assert call["parameters"] == {
        "caller": "browser",
        "called": "console",
        "call_sid": call["call_sid"],
        "pipeline": "spanish",
    }


async def _upgrade_status(url: str, headers: dict[str, str]) -> int:
    try:
        async with connect(url, additional_headers=headers, open_timeout=5):
            return 101
    except InvalidStatus as e:
        return e.response.status_code


async def test_the_media_stream_refuses_a_browser_without_the_cookie_or_from_another_site(
    console_bot,
):
    async with httpx.AsyncClient(base_url=console_bot.url) as http:
        issued = await http.post(
            "/console/calls",
            json={"pipeline": "default"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    stream = console_bot.url.replace("http", "ws") + issued.json()["stream_path"]
    cookie, origin = f"{COOKIE}={TOKEN}", console_bot.url
    assert await _upgrade_status(stream, {"Origin": origin}) == 403
    assert await _upgrade_status(stream, {"Origin": origin, "Cookie": f"{COOKIE}=guess"}) == 403
    assert (
        await _upgrade_status(stream, {"Origin": "https://evil.example", "Cookie": cookie}) == 403
    )
    forged = stream.rpartition("/")[0] + "/CA" + "0" * 32 + ".9999999999.forged"
    assert await _upgrade_status(forged, {"Origin": origin, "Cookie": cookie}) == 403
    assert await _upgrade_status(stream, {"Origin": origin, "Cookie": cookie}) == 101
    assert await _upgrade_status(stream, {"Origin": origin, "Cookie": cookie}) == 403  # replayed


async def test_no_browser_call_is_issued_while_the_server_drains(console_bot):
    console_bot.app.state.drain.draining = True
    async with httpx.AsyncClient(base_url=console_bot.url) as http:
        refused = await http.post(
            "/console/calls",
            json={"pipeline": "default"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert refused.status_code == 503
    assert refused.json() == {"error": "no new calls now: the server is shutting down"}
