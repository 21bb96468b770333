"""`GET /calls` and `GET /calls/{call_sid}`: the call records, behind a bearer token."""

import hmac
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from loguru import logger
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from records.queries import MAX_PAGE, CallFilter, get_call, list_calls


def bearer_token(token: str):
    """A dependency that lets through only `Authorization: Bearer <token>` (401 otherwise)."""
    expected = f"Bearer {token}".encode()

    async def check(request: Request) -> None:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise HTTPException(
                401,
                "a valid Authorization: Bearer <API_TOKEN> is required",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def records_routes(engine: AsyncEngine, token: str) -> APIRouter:
    """The call-record routes, reading `engine`'s database, open to holders of `token`."""
    router = APIRouter(dependencies=[Depends(bearer_token(token))], route_class=_Unavailable)

    @router.get("/calls")
    async def calls(
        since: Annotated[
            datetime | None, Query(description="started at or after (ISO 8601)")
        ] = None,
        until: Annotated[datetime | None, Query(description="started before (ISO 8601)")] = None,
        number: Annotated[str | None, Query(description="the caller's or called number")] = None,
        pipeline: str | None = None,
        end_reason: str | None = None,
        in_progress: bool | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict:
        where = CallFilter(_utc(since), _utc(until), number, pipeline, end_reason, in_progress)
        page = await list_calls(engine, where, limit=limit, offset=offset)
        more = len(page) == limit
        return {
            "calls": page,
            "limit": limit,
            "offset": offset,
            "next_offset": offset + limit if more else None,
        }

    @router.get("/calls/{call_sid}")
    async def call(call_sid: str) -> dict:
        found = await get_call(engine, call_sid)
        if found is None:
            raise HTTPException(404, f"no call {call_sid}")
        return found

    return router


class _Unavailable(APIRoute):
    """A route that answers 503 while the records' database cannot be reached."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except (DBAPIError, OSError, TimeoutError) as e:
                logger.warning(
                    f"{request.url.path} answered 503: "
                    f"the records' database did not answer ({e!r:.100})"
                )
                return JSONResponse({"error": "the call records' database is unavailable"}, 503)

        return handle


def _utc(moment: datetime | None) -> datetime | None:
    """`moment` in UTC; a time without a zone is taken as UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
