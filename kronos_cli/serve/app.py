"""The FastAPI application: routes, bearer auth, the body-size limit and JSON errors that name the field."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from kronos_cli import __version__
from kronos_cli.errors import KronosError
from kronos_cli.serve.batcher import DeadlineExceeded, QueueFull
from kronos_cli.serve.schema import (
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    ForecastRequest,
    ForecastResponse,
    field_path,
    with_limits,
)
from kronos_cli.serve.service import ForecastService, RequestError

log = logging.getLogger(__name__)
MAX_LISTED_ERRORS = 20
CLIENT_CLOSED = 499  # nginx's status for a caller that went away; nobody reads it, the access log shows it


def error_response(
    status: int, errors: list[tuple[str | None, str]], headers: dict[str, str] | None = None
) -> JSONResponse:
    """`{"error": "field: message", "field": ..., "errors": [...]}` for the first of `errors`."""
    field, message = errors[0]
    body = {
        "error": f"{field}: {message}" if field else message,
        "field": field,
        "errors": [{"field": f or "", "message": m} for f, m in errors[:MAX_LISTED_ERRORS]],
    }
    return JSONResponse(body, status_code=status, headers=headers)


class BodyLimit:
    """Answers 413 to a body over `limit` bytes before the app parses it (Content-Length or streamed)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def _reject(self, scope, receive, send, status: int, message: str) -> None:
        await error_response(status, [("body", message)])(scope, receive, send)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        try:
            too_big = length is not None and int(length) > self.limit
        except ValueError:
            return await self._reject(scope, receive, send, 400, "Content-Length is not a number")
        # Read (and, when too big, discard) the body before answering: a client still sending would otherwise
        # see the connection reset instead of the 413. A body far over the limit is cut off.
        drain_cap = max(4 * self.limit, 16 * 2**20)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            too_big = too_big or size > self.limit
            if not too_big:
                chunks.append(chunk)
            more = message.get("more_body", False) and not (too_big and size > drain_cap)
        if too_big:
            return await self._reject(
                scope,
                receive,
                send,
                413,
                f"request body exceeds this server's limit of {self.limit} bytes (--max-body-bytes)",
            )
        body, sent = b"".join(chunks), False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _validation_errors(exc: RequestValidationError) -> list[tuple[str | None, str]]:
    out = []
    for e in exc.errors():
        if e.get("type") == "json_invalid":
            out.append(("body", f"not valid JSON ({e.get('ctx', {}).get('error', e.get('msg'))})"))
        else:
            out.append((field_path(e.get("loc", ())), str(e.get("msg", "invalid"))))
    return out or [("body", "invalid request")]


def _handle_errors(app: FastAPI, service: ForecastService) -> None:
    """Every error a JSON body naming the field; a bad request counts as rejected, a failure is a 500 and the
    server keeps running."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        service.rejected += 1
        return error_response(422, _validation_errors(exc))

    @app.exception_handler(RequestError)
    async def _bad_request(_request: Request, exc: RequestError) -> JSONResponse:
        service.rejected += 1
        return error_response(422, [(exc.field, exc.message)])

    @app.exception_handler(KronosError)
    async def _bad_input(_request: Request, exc: KronosError) -> JSONResponse:
        service.rejected += 1
        return error_response(422, [(None, str(exc))])

    @app.exception_handler(QueueFull)
    async def _busy(_request: Request, exc: QueueFull) -> JSONResponse:
        return error_response(429, [(None, str(exc))], {"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(DeadlineExceeded)
    async def _late(_request: Request, exc: DeadlineExceeded) -> JSONResponse:
        return error_response(504, [(None, f"the forecast was dropped: {exc}")])

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not read the body at all (not UTF-8, not JSON)
            return error_response(400, [("body", f"unreadable ({exc.detail}); send UTF-8 JSON")])
        return error_response(exc.status_code, [(None, str(exc.detail))], getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _failure(_request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed: %s: %s", type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
        return error_response(500, [(None, f"forecast failed ({type(exc).__name__}: {exc}); the server keeps running")])


async def _until_disconnected(request: Request) -> None:
    """Returns when the caller closes the connection (its body has been read, so only that can arrive)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_gone(request: Request, service: ForecastService, work: Awaitable[Any]) -> Any:
    """The result of `work`, or a bare 499 when the caller went away first: the work is then cancelled, so a
    request still queued never reaches the model."""
    task, watch = asyncio.ensure_future(work), asyncio.ensure_future(_until_disconnected(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done() and watch.exception() is not None:  # this server cannot watch the connection
            return await task
    finally:
        watch.cancel()
    if task.done():
        return task.result()
    task.cancel()
    service.disconnected += 1
    return Response(status_code=CLIENT_CLOSED)


UNAUTHORISED = "missing or wrong bearer token; send the header `Authorization: Bearer <token>`"


class BearerFirst:
    """Answers 401 to a /v1 request without the right bearer token before its body is parsed or kept (it is
    drained and dropped, up to a cap, so a client still sending sees the answer rather than a reset): an
    unauthenticated caller costs no JSON parsing and never counts as a rejected request."""

    def __init__(self, app, token: str, drain_cap: int):
        self.app, self.token, self.drain_cap = app, token.encode(), drain_cap

    def _authorised(self, scope) -> bool:
        scheme, _, credentials = dict(scope["headers"]).get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self.token)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1") or self._authorised(scope):
            return await self.app(scope, receive, send)
        size, more = 0, scope["method"] not in ("GET", "HEAD", "OPTIONS")
        while more and size <= self.drain_cap:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        await error_response(401, [(None, UNAUTHORISED)], {"WWW-Authenticate": "Bearer"})(scope, receive, send)


def _authorise(token: str):
    """A dependency that needs `Authorization: Bearer <token>` (declared in the schema as the bearer scheme)."""
    bearer = HTTPBearer(auto_error=False, description="The token the server reads from its --token-env variable.")

    def authorise(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if creds is None or not hmac.compare_digest(creds.credentials.encode(), token.encode()):
            raise HTTPException(401, UNAUTHORISED, headers={"WWW-Authenticate": "Bearer"})

    return authorise


def _v1(service: ForecastService, token: str | None) -> APIRouter:
    """The forecasting routes; with `token`, each needs `Authorization: Bearer <token>` (and only then does the
    schema declare the bearer scheme)."""
    error = {"model": ErrorResponse}
    busy = {**error, "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}}
    answers = {400: error, 413: error, 422: error, 429: busy, 504: error, **({401: error} if token else {})}
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(_authorise(token))] if token else [])

    @v1.post("/forecast", response_model=ForecastResponse, summary="Forecast one series", responses=answers)
    async def forecast(body: ForecastRequest, request: Request) -> Any:
        service.requests += 1
        got = await _unless_gone(request, service, service.forecast([body]))
        return got if isinstance(got, Response) else JSONResponse(got[0])

    @v1.post(
        "/forecast/batch", response_model=BatchResponse, summary="Forecast many series in one call", responses=answers
    )
    async def forecast_batch(body: BatchRequest, request: Request) -> Any:
        service.requests += 1
        got = await _unless_gone(request, service, service.forecast(body.requests, batch_call=True))
        return got if isinstance(got, Response) else JSONResponse({"forecasts": got})

    @v1.get("/model", summary="Model configs, versions, device, limits", responses={401: error} if token else None)
    async def model() -> dict[str, Any]:
        return service.model_info()

    return v1


def create_app(
    service: ForecastService, token: str | None = None, on_ready: Callable[[], None] | None = None
) -> FastAPI:
    """The API over `service`; with `token`, /v1 routes need `Authorization: Bearer <token>`."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await service.start()
        if on_ready is not None:
            on_ready()
        yield
        await service.stop()

    app = FastAPI(
        title="Kronos forecasting service",
        version=__version__,
        lifespan=lifespan,
        description="Forecast OHLCV bars with a (fine-tuned) Kronos model. Concurrent requests are "
        "batched onto the model; a seeded request gives the same answer alone or batched.",
    )
    app.add_middleware(BodyLimit, limit=service.limits.max_body_bytes)
    if token:  # added last, so it runs first: no body is read or parsed for a caller without the token
        app.add_middleware(BearerFirst, token=token, drain_cap=max(4 * service.limits.max_body_bytes, 16 * 2**20))
    _handle_errors(app, service)

    @app.get("/healthz", summary="Liveness and batching statistics (no auth)")
    async def healthz() -> dict[str, Any]:
        return service.health()

    app.include_router(_v1(service, token))
    generated = app.openapi

    def openapi() -> dict[str, Any]:  # the enforced limits, as schema constraints a generated client obeys
        if app.openapi_schema is None:
            app.openapi_schema = with_limits(generated(), service.limits)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
