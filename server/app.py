"""The FastAPI app: `POST /voice` (TwiML), `WS /media` (one pipeline per call), `GET /health`."""

import asyncio
import os
from contextlib import asynccontextmanager, nullcontext
from dataclasses import replace
from pathlib import Path

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from loguru import logger
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
from server.admission import ADMISSION_DIR_VARIABLE, Admission, RefusalLog
from server.call import Call, run_call
from server.console_auth import ConsoleAuth
from server.console_routes import console_routes
from server.drain import Drain, drain_on_exit_signals
from server.greetings import GreetingCache
from server.logs import configure_logging, register_environment_secrets, register_secrets
from server.pipeline_reload import PipelineReloader
from server.served_pipelines import served_pipelines
from server.settings import Settings, load_settings
from server.size_limits import SizeLimits
from server.stream_start import StreamStart, StreamStartError, read_stream_start
from server.stream_tokens import ClaimedSids, StreamTokenError, StreamTokens
from server.transfer import RETURNED_PARAMETER
from server.transfer_routes import transfer_routes
from server.twilio_rest import TwilioCalls
from server.twilio_urls import MEDIA_PATH, VOICE_PATH, media_stream_url, webhook_url
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
    drain_on_signals: bool = False,
    dev: bool = False,
) -> FastAPI:
    """The bot server for `settings`, serving the pipelines in `declarations`.

    Variables that pipelines name themselves come from `environ` (default: the process's).
    `admission_dir`: where the server's processes count their calls together (default: a
    private directory, for one process). `drain_on_signals`: SIGTERM/SIGINT drain the calls
    before uvicorn stops (see `server.drain`); for a server that owns its process. `dev`:
    the pipeline files (`routes_file`'s directory) are reloaded on save.
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
    admission = Admission(admission_dir, settings.call_limit)
    drain = Drain(
        calls,
        # A pipeline a dev reload removed mid-call: the default's words.
        lambda call: (
            (declarations.get(call.pipeline) or declarations[routes.default]).bot.shutdown_goodbye
        ),
        timeout=settings.drain_timeout_secs,
        server_calls=admission.count,
    )
    refusals = RefusalLog()
    tokens = StreamTokens(
        settings.twilio_auth_token.get_secret_value(),
        claim=ClaimedSids(admission.directory / "stream-claims"),
    )

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
        await asyncio.to_thread(_preload, declarations)
        await greetings.warm(declarations, access)
        if reloader:
            reloader.start()
        with drain_on_exit_signals(drain) if drain_on_signals else nullcontext():
            yield
        if reloader:
            await reloader.stop()
        await app.state.twilio.close()
        admission.close()

    app = FastAPI(title="Twilio voice bot", lifespan=lifespan)
    app.add_middleware(SizeLimits)
    app.state.calls = calls
    app.state.access = access
    app.state.admission = admission
    app.state.drain = drain
    app.state.reloader = reloader
    app.include_router(transfer_routes(settings.public_url, validator, declarations))

    def refusal() -> str | None:
        """Why a new call is refused now, if it is."""
        if drain.draining:
            return "the server is shutting down"
        if not admission.has_room():
            return f"{admission.count()} calls in progress (MAX_CALLS {admission.capacity})"
        return None

    console = ConsoleAuth(api_token, settings.public_url)
    app.include_router(console_routes(console, tokens, lambda: sorted(declarations), refusal))

    @app.get("/health")
    async def health() -> JSONResponse:
        # "calls": this worker process's (the pid tells which one answered); "server_calls":
        # every process's together.
        status = "draining" if drain.draining else "ok"
        body = {
            "status": status,
            "calls": len(calls),
            "server_calls": admission.count(),
            "max_calls": admission.capacity,
            "tasks": len(asyncio.all_tasks()),
            "pid": os.getpid(),
        }
        return JSONResponse(body, status_code=503 if drain.draining else 200)

    @app.post(VOICE_PATH)
    async def voice(request: Request) -> Response:
        form = {key: str(value) for key, value in (await request.form()).items()}
        url = webhook_url(settings.public_url, VOICE_PATH, request.url.query)
        if not validator.validate(url, form, request.headers.get("X-Twilio-Signature", "")):
            logger.warning(f"rejected POST {VOICE_PATH}: missing or wrong X-Twilio-Signature")
            return JSONResponse({"error": "invalid X-Twilio-Signature"}, status_code=403)
        parameters = {
            "caller": form.get("From", ""),
            "called": form.get("To", ""),
            "call_sid": form.get("CallSid", ""),
        }
        pipeline, why = routes.choose(request.query_params.get(PIPELINE_PARAMETER), form.get("To"))
        if reason := refusal():
            refusals.refused(f"POST {VOICE_PATH} answered busy", reason)
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
        reason = refusal()
        slot = None if reason else admission.admit()
        if slot is None:
            reason = reason or f"{admission.capacity} calls in progress (MAX_CALLS)"
            refusals.refused(f"WS {MEDIA_PATH} upgrade refused", reason)
            await refuse_upgrade(websocket, 503, reason)
            return
        try:
            call_sid = tokens.redeem(token)
        except StreamTokenError as e:
            slot.release()
            logger.warning(f"rejected WS {MEDIA_PATH}: {e}")
            await websocket.close(code=WS_1008_POLICY_VIOLATION)  # before accept: HTTP 403
            return
        try:
            await serve_stream(websocket, call_sid, browser=browser)
        finally:
            slot.release()

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
        call = Call(start=start, pipeline=pipeline, browser=browser)
        with logger.contextualize(call_sid=start.call_sid, stream_sid=start.stream_sid):
            calls[start.call_sid] = call
            logger.info(f"call started with pipeline {pipeline!r} ({why})")
            try:
                await run_call(
                    websocket,
                    call,
                    declaration=declarations[call.pipeline],
                    access=access,
                    twilio=app.state.twilio,
                    public_url=settings.public_url,
                    greeting=greetings.get(declarations[call.pipeline]),
                )
            except Exception:
                logger.exception("the call failed")
            finally:
                calls.pop(start.call_sid, None)
                drain.call_ended()
                logger.info("call ended")

    return app


def app_from_environment() -> FastAPI:
    """The app of one worker process, configured from the environment like its parent."""
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    shared = os.environ.get(ADMISSION_DIR_VARIABLE)
    return create_app(
        load_settings(),
        load_declarations(),
        admission_dir=Path(shared) if shared else None,
        drain_on_signals=True,
    )


def _for_call(start: StreamStart, call_sid: str) -> StreamStart:
    """`start`, if it is for the call whose stream token was redeemed."""
    if start.call_sid != call_sid:
        raise StreamStartError(f"'start' names call {start.call_sid}, the stream is {call_sid}'s")
    return start


def _tool_secrets(declarations: dict[str, Declaration], access: ProviderAccess) -> list[str]:
    """The values of the variables tools send as headers or sign with: all credentials."""
    return [access.get(v) for d in declarations.values() for t in d.tools for v in t.needs()]


def _preload(declarations: dict[str, Declaration]) -> None:
    """Load what every call shares before the first call needs it."""
    shared_model()
    shared_tls()
    if any(declaration.turn_end == "smart-turn" for declaration in declarations.values()):
        shared_session()  # Smart Turn v3: ~45 MB and ~100 ms, only if a pipeline uses it
