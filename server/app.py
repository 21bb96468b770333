"""The FastAPI app: `POST /voice` (TwiML), `WS /media` (one pipeline per call), `GET /health`."""

import asyncio
import os
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from loguru import logger
from starlette.status import WS_1008_POLICY_VIOLATION
from twilio.request_validator import RequestValidator

from pipelines.declaration import PIPELINES_DIR, ROUTES_FILE, Declaration, load_declarations
from pipelines.routing import PIPELINE_PARAMETER, load_routes
from server.call import Call, run_call
from server.greetings import GreetingCache
from server.logs import configure_logging
from server.served_pipelines import served_pipelines
from server.settings import Settings, load_settings
from server.stream_start import StreamStartError, read_stream_start
from server.twilio_rest import TwilioCalls
from server.twilio_urls import MEDIA_PATH, VOICE_PATH, media_stream_url, webhook_url
from server.twiml import connect_stream
from telephony.shared_smart_turn import shared_session
from telephony.shared_tls import shared_tls
from telephony.shared_vad import shared_model


def create_app(
    settings: Settings,
    declarations: dict[str, Declaration],
    *,
    routes_file: Path = PIPELINES_DIR / ROUTES_FILE,
    environ: dict[str, str] | None = None,
) -> FastAPI:
    """The bot server for `settings`, serving the pipelines in `declarations`.

    Variables that pipelines name themselves come from `environ` (default: the process's).
    Raises `ConfigError` or `DeclarationError` naming what stops it from serving them.
    """
    routes = load_routes(settings.pipeline, set(declarations), routes_file)
    access = settings.provider_access(
        {name for declaration in declarations.values() for name in declaration.needs()}, environ
    )
    routes = replace(routes, served=frozenset(served_pipelines(declarations, access, routes)))
    declarations = {name: declarations[name] for name in routes.served}
    validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
    calls: dict[str, Call] = {}
    greetings = GreetingCache()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.twilio = TwilioCalls(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            base_url=settings.twilio_api_base_url,
        )
        await asyncio.to_thread(_preload, declarations)
        await greetings.warm(declarations, access)
        yield
        await app.state.twilio.close()

    app = FastAPI(title="Twilio voice bot", lifespan=lifespan)
    app.state.calls = calls
    app.state.access = access

    @app.get("/health")
    async def health() -> dict:
        # Per worker process: the pid tells which one answered.
        tasks = len(asyncio.all_tasks())
        return {"status": "ok", "calls": len(calls), "tasks": tasks, "pid": os.getpid()}

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
        parameters[PIPELINE_PARAMETER] = pipeline
        logger.info(
            f"incoming call {parameters['call_sid']} from {parameters['caller']}: "
            f"pipeline {pipeline!r} ({why})"
        )
        twiml = connect_stream(media_stream_url(settings.public_url), parameters)
        return Response(content=twiml, media_type="application/xml")

    @app.websocket(MEDIA_PATH)
    async def media(websocket: WebSocket) -> None:
        signature = websocket.headers.get("X-Twilio-Signature", "")
        if not validator.validate(media_stream_url(settings.public_url), {}, signature):
            logger.warning(f"rejected WS {MEDIA_PATH}: missing or wrong X-Twilio-Signature")
            await websocket.close(code=WS_1008_POLICY_VIOLATION)  # before accept: HTTP 403
            return
        await websocket.accept()
        try:
            start = await read_stream_start(websocket)
        except StreamStartError as e:
            logger.warning(f"closing a media stream that did not start: {e}")
            await websocket.close(code=WS_1008_POLICY_VIOLATION)
            return
        pipeline, why = routes.choose(
            start.parameters.get(PIPELINE_PARAMETER), start.parameters.get("called")
        )
        call = Call(start=start, pipeline=pipeline)
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
                    greeting=greetings.get(declarations[call.pipeline]),
                )
            except Exception:
                logger.exception("the call failed")
            finally:
                del calls[start.call_sid]
                logger.info("call ended")

    return app


def app_from_environment() -> FastAPI:
    """The app of one worker process, configured from the environment like its parent."""
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    return create_app(load_settings(), load_declarations())


def _preload(declarations: dict[str, Declaration]) -> None:
    """Load what every call shares before the first call needs it."""
    shared_model()
    shared_tls()
    if any(declaration.turn_end == "smart-turn" for declaration in declarations.values()):
        shared_session()  # Smart Turn v3: ~45 MB and ~100 ms, only if a pipeline uses it
