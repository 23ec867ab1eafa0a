"""The FastAPI application: routes, bearer auth, and JSON errors that name the field."""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.models import OpenAPI
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException

from kronos_cli import __version__
from kronos_cli.core.errors import KronosError
from kronos_cli.serve.batcher import DeadlineExceeded, QueueFull
from kronos_cli.serve.bodies import BodyLimit, BodyParser, late_body, parse_json, read_body
from kronos_cli.serve.connections import ConnectionLimits, Watch
from kronos_cli.serve.draining import Drain, DrainGate
from kronos_cli.serve.responses import error_response
from kronos_cli.serve.schema import (
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    ForecastRequest,
    ForecastResponse,
    field_path,
    with_limits,
)
from kronos_cli.serve.service import ForecastService, Prepared, RequestError

log = logging.getLogger(__name__)
CLIENT_CLOSED = 499  # nginx's status for a caller that went away; nobody reads it, the access log shows it


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
    drained and dropped, up to a cap and within the body deadline, so a client still sending sees the answer rather
    than a reset): an unauthenticated caller costs no JSON parsing and never counts as a rejected request."""

    def __init__(self, app, token: str, drain_cap: int, timeout_s: float, note: Callable[[str], None]):
        self.app, self.token, self.drain_cap, self.timeout_s = app, token.encode(), drain_cap, timeout_s
        self.note = note  # counts a body that came too slowly

    def _authorised(self, scope) -> bool:
        scheme, _, credentials = dict(scope["headers"]).get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self.token)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1") or self._authorised(scope):
            return await self.app(scope, receive, send)
        if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            body = await read_body(receive, 0, self.drain_cap, self.timeout_s)
            if body.outcome == "gone":
                return
            if body.outcome == "late":
                self.note("slow_body")
                return await late_body(self.timeout_s)(scope, receive, send)
        await error_response(401, [(None, UNAUTHORISED)], {"WWW-Authenticate": "Bearer"})(scope, receive, send)


def _authorise(token: str):
    """A dependency that needs `Authorization: Bearer <token>` (declared in the schema as the bearer scheme)."""
    bearer = HTTPBearer(auto_error=False, description="The token the server reads from its token_env variable.")

    def authorise(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if creds is None or not hmac.compare_digest(creds.credentials.encode(), token.encode()):
            raise HTTPException(401, UNAUTHORISED, headers={"WWW-Authenticate": "Bearer"})

    return authorise


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads `model` itself (on a thread: see `bodies`); `create_app` adds
    the model's schema to the components, as FastAPI does for a body parameter."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"content": {"application/json": {"schema": schema}}, "required": True}}


def _reader(service: ForecastService, parser: BodyParser, model: type[BaseModel], batch_call: bool):
    """A route's body, parsed as `model` and checked into the model's jobs on a worker thread."""

    def check(raw: bytes, content_type: str | None) -> list[Prepared]:
        body = parse_json(model, raw, content_type)
        return service.check(body.requests if batch_call else [body], batch_call)

    async def read(request: Request) -> list[Prepared]:
        work = functools.partial(check, content_type=request.headers.get("content-type"))
        # straight from `receive` (`BodyLimit` replays the whole body once), not `request.body()`, which would keep
        # the bytes for as long as the request waits for the model
        return await parser.run(work, (await request.receive()).get("body", b""))

    return read


def _v1(service: ForecastService, token: str | None, parser: BodyParser) -> APIRouter:
    """The forecasting routes; with `token`, each needs `Authorization: Bearer <token>` (and only then does the
    schema declare the bearer scheme)."""
    error = {"model": ErrorResponse}
    busy = {**error, "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}}
    answers = {400: error, 408: error, 413: error, 422: error, 429: busy, 503: busy, 504: error}
    answers.update({401: error} if token else {})
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(_authorise(token))] if token else [])
    read_one, read_many = _reader(service, parser, ForecastRequest, False), _reader(service, parser, BatchRequest, True)

    @v1.post(
        "/forecast",
        response_model=ForecastResponse,
        summary="Forecast one series",
        responses=answers,
        openapi_extra=_json_body(ForecastRequest),
    )
    async def forecast(request: Request) -> Any:
        service.requests += 1
        got = await _unless_gone(request, service, service.answer(await read_one(request)))
        return got if isinstance(got, Response) else JSONResponse(got[0])

    @v1.post(
        "/forecast/batch",
        response_model=BatchResponse,
        summary="Forecast many series in one call",
        responses=answers,
        openapi_extra=_json_body(BatchRequest),
    )
    async def forecast_batch(request: Request) -> Any:
        service.requests += 1
        got = await _unless_gone(request, service, service.answer(await read_many(request)))
        return got if isinstance(got, Response) else JSONResponse({"forecasts": got})

    @v1.get("/model", summary="Model configs, versions, device, limits", responses={401: error} if token else None)
    async def model() -> dict[str, Any]:
        return service.model_info()

    return v1


def _openapi(app: FastAPI, service: ForecastService) -> Callable[[], dict[str, Any]]:
    """The generated schema with the request bodies the routes read themselves, and the enforced limits as schema
    constraints a generated client obeys."""
    generated = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generated()
            bodies = models_json_schema(
                [(m, "validation") for m in (ForecastRequest, BatchRequest)],
                ref_template="#/components/schemas/{model}",
            )[1]
            schema.setdefault("components", {}).setdefault("schemas", {}).update(bodies["$defs"])
            normalised = jsonable_encoder(OpenAPI(**schema), by_alias=True, exclude_none=True)  # as FastAPI's own
            app.openapi_schema = with_limits(normalised, service.limits)
        return app.openapi_schema

    return openapi


def _describe(watch: Watch, drain: Drain, max_body_bytes: int) -> str:
    return (
        "Forecast OHLCV bars with a (fine-tuned) Kronos model. Concurrent requests are batched onto the model; a "
        "seeded request gives the same answer alone or batched.\n\n"
        f"Server limits: {watch.limits.describe()}, bodies of at most {max_body_bytes} bytes (413). On SIGTERM or "
        f"SIGINT the requests in flight are finished for up to {drain.grace_s:g} s while new ones get 503."
    )


def create_app(
    service: ForecastService,
    token: str | None = None,
    on_ready: Callable[[], None] | None = None,
    watch: Watch | None = None,
    drain: Drain | None = None,
) -> FastAPI:
    """The API over `service`; with `token`, /v1 routes need `Authorization: Bearer <token>`. `watch` holds the
    connection limits (its body deadline applies here), `drain` the state of a graceful shutdown."""
    watch = watch or Watch(ConnectionLimits())
    drain = drain or Drain(service.batching.request_timeout_s)
    parser = BodyParser()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await service.start()
        if on_ready is not None:
            on_ready()
        yield
        await service.stop()
        watch.flush()

    max_body = service.limits.max_body_bytes
    description = _describe(watch, drain, max_body)
    app = FastAPI(title="Kronos forecasting service", version=__version__, lifespan=lifespan, description=description)
    body_timeout = watch.limits.body_timeout_s
    app.add_middleware(BodyLimit, limit=max_body, timeout_s=body_timeout, note=watch.note)
    if token:  # added after BodyLimit, so it runs first: no body is read or parsed for a caller without the token
        cap = max(4 * max_body, 16 * 2**20)
        app.add_middleware(BearerFirst, token=token, drain_cap=cap, timeout_s=body_timeout, note=watch.note)
    app.add_middleware(DrainGate, drain=drain)  # outermost: while draining, nothing new gets in
    _handle_errors(app, service)

    @app.get(
        "/healthz",
        summary="Liveness, batching and connection statistics (no auth)",
        responses={503: {"model": ErrorResponse}},
    )
    async def healthz() -> dict[str, Any]:
        in_flight = len(drain.requests)  # this one included
        return {**service.health(), "in_flight": in_flight, "connections": watch.stats(), "heap_trims": parser.trims}

    app.include_router(_v1(service, token, parser))
    app.openapi = _openapi(app, service)  # type: ignore[method-assign]
    return app
