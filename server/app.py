"""The FastAPI app: `POST /voice` (TwiML), `WS /media` (one pipeline per call), `GET /health`.

Also the operator API (`server/calls_api.py`, with API_TOKEN) and Twilio's reports on calls
(`server/twilio_callbacks.py`).
"""

import asyncio
import os
from contextlib import asynccontextmanager, nullcontext
from dataclasses import replace
from pathlib import Path

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from loguru import logger
from pydantic import SecretStr
from starlette.status import WS_1008_POLICY_VIOLATION
from twilio.request_validator import RequestValidator

from models.silero_vad import shared_model
from models.smart_turn import shared_session
from pipelines.declaration import (
    ROUTES_FILE,
    Declaration,
    load_declarations,
    pipelines_dir,
)
from pipelines.provider import ProviderAccess
from pipelines.routing import PIPELINE_PARAMETER, load_routes
from records.api import records_routes
from records.database import database_url
from records.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from records.metrics import CallMetrics
from records.webhook import WebhookSender
from server.admission import ADMISSION_DIR_VARIABLE, RefusalLog
from server.call import Call, run_call
from server.call_records import DIRECTION_PARAMETER, CallRecords
from server.calls_api import calls_api
from server.console_auth import ConsoleAuth
from server.console_routes import console_routes
from server.drain import SHUTDOWN_REASON, Drain, drain_on_exit_signals
from server.greetings import GreetingCache
from server.heap import freeze_startup_heap
from server.logs import configure_logging, register_environment_secrets, register_secrets
from server.outbound import VARIABLES_PARAMETER, parse_variables
from server.pipeline_reload import PipelineReloader
from server.served_pipelines import served_pipelines
from server.settings import ConfigError, Settings, load_settings
from server.shared_database import DatabaseUnavailable
from server.shared_state import shared_state
from server.signed_requests import signed_form
from server.size_limits import SizeLimits
from server.stream_start import StreamStart, StreamStartError, read_stream_start
from server.stream_tokens import StreamTokenError, StreamTokens
from server.transfer import RETURNED_PARAMETER
from server.transfer_routes import transfer_routes
from server.twilio_callbacks import twilio_callbacks
from server.twilio_rest import TwilioCalls
from server.twilio_urls import MEDIA_PATH, RECORDING_PATH, VOICE_PATH, media_stream_url, webhook_url
from server.twiml import busy, connect_stream
from server.upgrade_denial import refuse_upgrade
from services.tls import shared_tls


def create_app(
    settings: Settings,
    declarations: dict[str, Declaration],
    *,
    routes_file: Path | None = None,
    environ: dict[str, str] | None = None,
    admission_dir: Path | None = None,
    owns_process: bool = False,
    dev: bool = False,
) -> FastAPI:
    """The bot server for `settings`, serving the pipelines in `declarations`.

    Variables that pipelines name themselves come from `environ` (default: the process's).
    `admission_dir`: where the server's processes count their calls together (default: a
    private directory, for one process); with DATABASE_URL at PostgreSQL they count them there,
    with every other instance (`server.shared_state`). `owns_process`, for a server that owns
    its process: SIGTERM/SIGINT drain the calls before uvicorn stops (see `server.drain`), and
    what the server loaded to start is frozen out of the garbage collector (`server.heap`).
    `dev`: the pipeline files (`routes_file`'s directory) are reloaded on save.
    Raises `ConfigError` or `DeclarationError` naming what stops it from serving them.
    """
    routes_file = routes_file or pipelines_dir() / ROUTES_FILE
    routes = load_routes(settings.pipeline, set(declarations), routes_file)
    access = settings.provider_access(
        {name for declaration in declarations.values() for name in declaration.needs()}, environ
    )
    register_environment_secrets(dict(access.values))  # masked in every log line from now on
    register_secrets(*_tool_secrets(declarations, access))
    api_token = settings.api_token.get_secret_value() if settings.api_token else None
    register_secrets(*filter(None, [api_token]))
    routes = replace(routes, served=frozenset(served_pipelines(declarations, access, routes)))
    declarations = {name: declarations[name] for name in routes.served}
    validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
    calls: dict[str, Call] = {}
    greetings = GreetingCache()
    url = database_url(_secret(settings.database_url), settings.data_dir)
    shared = shared_state(url, admission_dir, settings.call_limit)
    admission = shared.admission
    drain = Drain(
        calls,
        # A pipeline a dev reload removed mid-call: the default's words.
        lambda call: (
            (declarations.get(call.pipeline) or declarations[routes.default]).bot.shutdown_goodbye
        ),
        timeout=settings.drain_timeout_secs,
        server_calls=admission.count_here,
    )
    refusals = RefusalLog()
    metrics = CallMetrics()
    records = CallRecords(
        url,
        metrics,
        webhooks=_webhooks(settings, declarations),
        webhook_url=lambda p: declarations[p].call.webhook_url or settings.call_webhook_url,
    )
    tokens = StreamTokens(settings.twilio_auth_token.get_secret_value(), claim=shared.claims)
    answers = shared.answers

    async def reload_pipelines() -> str:
        """Load the pipeline files again and serve them from the next call on: what changed."""
        nonlocal routes, access
        fresh = load_declarations(routes_file.parent)
        fresh_routes = load_routes(settings.pipeline, set(fresh), routes_file)
        needs = {name for declaration in fresh.values() for name in declaration.needs()}
        fresh_access = settings.provider_access(needs, environ)
        served = served_pipelines(fresh, fresh_access, fresh_routes)
        changed = {name: fresh[name] for name in served if declarations.get(name) != fresh[name]}
        register_environment_secrets(dict(fresh_access.values))
        register_secrets(*_tool_secrets(fresh, fresh_access))
        await greetings.warm(changed, fresh_access)
        declarations.clear()
        declarations.update({name: fresh[name] for name in served})
        routes, access = replace(fresh_routes, served=frozenset(served)), fresh_access
        app.state.access = access
        return ", ".join(sorted(changed)) or "nothing"

    reloader = PipelineReloader(routes_file.parent, reload_pipelines) if dev else None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.twilio = TwilioCalls(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            base_url=settings.twilio_api_base_url,
        )
        await records.start()  # migrates the schema, the shared state's tables included
        shared.start()
        await asyncio.to_thread(_preload, declarations)
        await greetings.warm(declarations, access)
        if owns_process:
            freeze_startup_heap()
        if reloader:
            reloader.start()
        with drain_on_exit_signals(drain) if owns_process else nullcontext():
            yield
        if reloader:
            await reloader.stop()
        await app.state.twilio.close()
        await records.close()  # after the drain: every call's last state is written
        await shared.close()

    app = FastAPI(title="Twilio voice bot", lifespan=lifespan)
    app.add_middleware(SizeLimits)
    app.state.calls = calls
    app.state.access = access
    app.state.admission = admission
    app.state.shared = shared
    app.state.drain = drain
    app.include_router(twilio_callbacks(validator, settings.public_url, answers))
    app.state.records = records
    app.state.reloader = reloader
    app.include_router(transfer_routes(settings.public_url, validator, declarations))
    if settings.api_token:  # unset: no operator API at all
        register_secrets(settings.api_token.get_secret_value())
        app.include_router(records_routes(records.engine, settings.api_token.get_secret_value()))

    async def refusal() -> str | None:
        """Why a new call is refused now, if it is."""
        if drain.draining:
            return SHUTDOWN_REASON
        try:
            count = await admission.count()  # with no limit too: the database must answer
        except DatabaseUnavailable as e:
            return str(e)
        if admission.capacity is not None and count >= admission.capacity:
            return f"{count} calls in progress (MAX_CALLS {admission.capacity})"
        return None

    if settings.api_token:
        token = settings.api_token.get_secret_value()
        register_secrets(token)
        api = calls_api(
            token=token,
            public_url=settings.public_url,
            phone_number=settings.twilio_phone_number,
            declarations=declarations,
            routes=routes,
            twilio=lambda: app.state.twilio,
            refusal=refusal,
        )
        app.include_router(api)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)

    console = ConsoleAuth(api_token, settings.public_url)
    app.include_router(console_routes(console, tokens, lambda: sorted(declarations), refusal))

    @app.get("/health")
    async def health() -> JSONResponse:
        # "calls": this worker process's (the pid tells which one answered); "server_calls":
        # every process's together (every instance's, with PostgreSQL). The database down:
        # still 200 (this process is fine; calls routed here hear "busy"), saying so.
        status = "draining" if drain.draining else "ok"
        try:
            server_calls, unavailable = await admission.count(), None
        except DatabaseUnavailable as e:
            server_calls, unavailable = None, str(e)
        body = {
            "status": status,
            "calls": len(calls),
            "server_calls": server_calls,
            "max_calls": admission.capacity,
            "tasks": len(asyncio.all_tasks()),
            "pid": os.getpid(),
        }
        if unavailable:
            body["refusing"] = unavailable
        return JSONResponse(body, status_code=503 if drain.draining else 200)

    @app.post(VOICE_PATH)
    async def voice(request: Request) -> Response:
        form = await signed_form(request, validator, settings.public_url)
        if form is None:
            return JSONResponse({"error": "invalid X-Twilio-Signature"}, status_code=403)
        parameters = {
            "caller": form.get("From", ""),
            "called": form.get("To", ""),
            "call_sid": form.get("CallSid", ""),
            # A call we placed (`POST /calls`): its variables are in the signed URL.
            DIRECTION_PARAMETER: "outbound" if _outbound(form) else "inbound",
            VARIABLES_PARAMETER: request.query_params.get(VARIABLES_PARAMETER, ""),
        }
        pipeline, why = routes.choose(request.query_params.get(PIPELINE_PARAMETER), form.get("To"))
        if reason := await refusal():
            refusals.refused(f"POST {VOICE_PATH} answered busy", reason)
            metrics.refusals.labels("webhook").inc()
            bot = declarations[pipeline].bot
            twiml = busy(bot.busy, bot.language)
            return Response(content=twiml, media_type="application/xml")
        if not parameters["call_sid"]:
            logger.warning(f"rejected POST {VOICE_PATH}: no CallSid")
            return JSONResponse({"error": "no CallSid"}, status_code=400)
        parameters[PIPELINE_PARAMETER] = pipeline
        logger.info(
            f"incoming call {parameters['call_sid']} from {parameters['caller']}: "
            f"pipeline {pipeline!r} ({why})"
        )
        # Back from a transfer nobody answered (a URL we gave Twilio): the call's next stream.
        leg = ""
        if returned := request.query_params.get("transfer"):
            parameters[RETURNED_PARAMETER] = returned
            leg = f"{returned}-{request.query_params.get('leg', '')}"
        url = media_stream_url(settings.public_url, tokens.issue(parameters["call_sid"], leg))
        return Response(content=connect_stream(url, parameters), media_type="application/xml")

    @app.websocket(MEDIA_PATH + "/{token}")
    async def media(websocket: WebSocket, token: str) -> None:
        signature = websocket.headers.get("X-Twilio-Signature", "")
        signed = validator.validate(media_stream_url(settings.public_url, token), {}, signature)
        # The console's browser calls come with its cookie instead (server.console_auth).
        browser = not signed and console.browser_call_ok(websocket)
        if not (signed or browser):
            logger.warning(f"rejected WS {MEDIA_PATH}: missing or wrong X-Twilio-Signature")
            await websocket.close(code=WS_1008_POLICY_VIOLATION)  # before accept: HTTP 403
            return
        reason, slot = SHUTDOWN_REASON if drain.draining else None, None
        if reason is None:
            try:
                slot = await admission.admit()
            except DatabaseUnavailable as e:
                reason = str(e)
        if slot is None:
            full = f"{admission.capacity} calls in progress (MAX_CALLS {admission.capacity})"
            reason = reason or full
            refusals.refused(f"WS {MEDIA_PATH} upgrade refused", reason)
            metrics.refusals.labels("media_stream").inc()
            await refuse_upgrade(websocket, 503, reason)
            return
        try:
            call_sid = await tokens.redeem(token)
        except StreamTokenError as e:
            await slot.release()
            logger.warning(f"rejected WS {MEDIA_PATH}: {e}")
            await websocket.close(code=WS_1008_POLICY_VIOLATION)  # before accept: HTTP 403
            return
        except DatabaseUnavailable as e:
            await slot.release()
            refusals.refused(f"WS {MEDIA_PATH} upgrade refused", str(e))
            metrics.refusals.labels("media_stream").inc()
            await refuse_upgrade(websocket, 503, str(e))
            return
        try:
            await serve_stream(websocket, call_sid, browser=browser)
        finally:
            await slot.release()

    async def serve_stream(websocket: WebSocket, call_sid: str, *, browser: bool) -> None:
        """One admitted media stream: its call, from `start` until either side hangs up.

        `browser`: a call from the console's page, not through Twilio.
        """
        await websocket.accept()
        try:
            start = _for_call(await read_stream_start(websocket), call_sid)
        except StreamStartError as e:
            logger.warning(f"closing a media stream that did not start: {e}")
            await websocket.close(code=WS_1008_POLICY_VIOLATION)
            return
        pipeline, why = routes.choose(
            start.parameters.get(PIPELINE_PARAMETER), start.parameters.get("called")
        )
        call = Call(
            start=start,
            pipeline=pipeline,
            outbound=start.parameters.get("direction") == "outbound",
            variables=parse_variables(start.parameters.get(VARIABLES_PARAMETER)),
            browser=browser,
        )
        with logger.contextualize(call_sid=start.call_sid, stream_sid=start.stream_sid):
            calls[start.call_sid] = call
            logger.info(f"call started with pipeline {pipeline!r} ({why})")
            recorder, failed = records.recorder(call), False
            try:
                await run_call(
                    websocket,
                    call,
                    declaration=declarations[call.pipeline],
                    access=access,
                    twilio=app.state.twilio,
                    public_url=settings.public_url,
                    greeting=greetings.get(declarations[call.pipeline]),
                    answers=answers,
                    recording_callback=webhook_url(settings.public_url, RECORDING_PATH),
                    observers=[recorder],
                )
            except Exception:
                failed = True
                logger.exception("the call failed")
            finally:
                records.finish(recorder, call, failed=failed)
                calls.pop(start.call_sid, None)
                drain.call_ended()
                logger.info(f"call ended{_recorded(call)}")

    return app


def app_from_environment() -> FastAPI:
    """The app of one worker process, configured from the environment like its parent."""
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    shared = os.environ.get(ADMISSION_DIR_VARIABLE)
    return create_app(
        load_settings(),
        load_declarations(),
        admission_dir=Path(shared) if shared else None,
        owns_process=True,
    )


def _for_call(start: StreamStart, call_sid: str) -> StreamStart:
    """`start`, if it is for the call whose stream token was redeemed."""
    if start.call_sid != call_sid:
        raise StreamStartError(f"'start' names call {start.call_sid}, the stream is {call_sid}'s")
    return start


def _recorded(call: Call) -> str:
    """` (recording RE…: <url>)` for a recorded call."""
    if call.recording is None:
        return ""
    return f" (recording {call.recording.sid}: {call.recording.url})"


def _outbound(form: dict[str, str]) -> bool:
    """Whether Twilio's webhook is for a call we placed (`Direction` outbound-api/-dial)."""
    return form.get("Direction", "").startswith("outbound")


def _webhooks(settings: Settings, declarations: dict[str, Declaration]) -> WebhookSender | None:
    """The post-call webhook's sender, if a webhook is configured; ConfigError if unsigned."""
    declared = [d.path.name for d in declarations.values() if d.call.webhook_url]
    if not (settings.call_webhook_url or declared):
        return None
    if not settings.call_webhook_secret:
        raise ConfigError(
            f"CALL_WEBHOOK_SECRET is not set: {', '.join(declared)} [call] webhook_url needs it"
        )
    secret = settings.call_webhook_secret.get_secret_value()
    register_secrets(secret)
    return WebhookSender(secret)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value else None


def _tool_secrets(declarations: dict[str, Declaration], access: ProviderAccess) -> list[str]:
    """The values of the variables tools send as headers or sign with: all credentials."""
    return [access.get(v) for d in declarations.values() for t in d.tools for v in t.needs()]


def _preload(declarations: dict[str, Declaration]) -> None:
    """Load what every call shares before the first call needs it."""
    shared_model()
    shared_tls()
    if any(declaration.turn_end == "smart-turn" for declaration in declarations.values()):
        shared_session()  # Smart Turn v3: ~45 MB and ~100 ms, only if a pipeline uses it
