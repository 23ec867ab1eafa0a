"""Request bodies: read within a size bound (413) and a deadline (408), then parsed and checked on worker threads.

FastAPI would parse a body on the event loop: json.loads and pydantic's validation of an 8 MB body (100,000 bars)
hold it for most of a second, during which nothing else, not even /healthz, is answered, and every body parsed at
once keeps its ~150 MB of Python objects alive. Here the routes receive the raw bytes and `BodyParser` parses and
checks them on a thread: bodies over `LARGE_BODY_BYTES` one at a time (the memory of a burst is then that of one
parse, not of all of them), smaller ones beside them; after large ones the freed heap is handed back to the OS.
`parse_json` gives the answers FastAPI gave (the same errors, for the same bodies).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import email.message
import functools
import gc
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from kronos_cli.serve import sliced_json
from kronos_cli.serve.responses import error_response

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")
LARGE_BODY_BYTES = 2**20
TRIM_AFTER_S = 1.0  # quiet after the last large body before its memory is handed back


@dataclass(frozen=True)
class Body:
    """What `read_body` got: `data` (empty unless `whole`), its size, and whether it came whole, too big, too late
    or not at all (the client left)."""

    data: bytes
    size: int
    outcome: str  # whole | too_big | late | gone


async def read_body(receive, keep: int, cap: int, timeout_s: float) -> Body:
    """Read a request body within `timeout_s`, keeping it while it stays within `keep` bytes; a larger one is read
    on (and dropped) up to `cap`, so that a client still sending sees the answer rather than a reset."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    chunks, size, more, too_big = [], 0, True, False
    while more:
        try:
            message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            return Body(b"", size, "late")
        if message["type"] == "http.disconnect":
            return Body(b"", size, "gone")
        chunk = message.get("body", b"")
        size += len(chunk)
        too_big = too_big or size > keep
        if not too_big:
            chunks.append(chunk)
        more = message.get("more_body", False) and size <= cap
    return Body(b"", size, "too_big") if too_big else Body(b"".join(chunks), size, "whole")


def late_body(timeout_s: float):
    """The 408 for a body that did not arrive in time; the connection closes after it."""
    message = f"the request body did not arrive within {timeout_s:g} s (body_timeout_s)"
    return error_response(408, [("body", message)], {"Connection": "close"})


class BodyLimit:
    """Answers 413 to a body over `limit` bytes (Content-Length or streamed) and 408 to one not read within
    `timeout_s`, before the app parses it; `note` counts the late ones."""

    def __init__(self, app, limit: int, timeout_s: float, note: Callable[[str], None]):
        self.app, self.limit, self.timeout_s, self.note = app, limit, timeout_s, note

    async def _reject(self, scope, receive, send, status: int, message: str) -> None:
        await error_response(status, [("body", message)])(scope, receive, send)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        try:
            declared_too_big = length is not None and int(length) > self.limit
        except ValueError:
            return await self._reject(scope, receive, send, 400, "Content-Length is not a number")
        cap = max(4 * self.limit, 16 * 2**20)  # a body far over the limit is cut off
        body = await read_body(receive, 0 if declared_too_big else self.limit, cap, self.timeout_s)
        if body.outcome == "gone":
            return
        if body.outcome == "late":
            self.note("slow_body")
            return await late_body(self.timeout_s)(scope, receive, send)
        if body.outcome == "too_big":
            message = f"request body exceeds this server's limit of {self.limit} bytes (max_body_bytes)"
            return await self._reject(scope, receive, send, 413, message)
        held = [body.data]  # handed over once and then dropped here, so that the parse frees the body
        del body

        async def replay() -> dict[str, Any]:
            if not held:
                return await receive()
            return {"type": "http.request", "body": held.pop(), "more_body": False}

        await self.app(scope, replay, send)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def parse_json(model: type[M], raw: bytes, content_type: str | None) -> M:
    """`raw` as `model`, read as FastAPI reads a JSON body (json.loads, here in slices, then pydantic in Python mode,
    so that NaN is read and then refused by its field); its errors are FastAPI's (`RequestValidationError`, 400 when
    unreadable)."""
    if not raw:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    data: Any = raw  # not JSON by its Content-Type: pydantic refuses the bytes as not an object
    if _is_json(content_type):
        try:
            data = sliced_json.loads(raw)
        except json.JSONDecodeError as exc:
            error = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {}}
            raise RequestValidationError([{**error, "ctx": {"error": exc.msg}}]) from None
        except (ValueError, RecursionError):  # not UTF-8, -16 or -32; nested too deeply
            raise HTTPException(400, "There was an error parsing the body") from None
    try:
        return model.model_validate(data, from_attributes=True)  # as FastAPI validates (the same messages)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def _without_gc(work: Callable[[bytes], R], raw: bytes) -> R:
    """`work(raw)` with the cyclic collector paused: it would traverse every object a large parse makes (some
    300,000 for 8 MB), holding the GIL for tens of milliseconds each time, though reference counting frees them all
    when the parse returns. Large bodies are parsed one at a time, so only one parse pauses it."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return work(raw)
    finally:
        if paused:
            gc.enable()


def _malloc_trim() -> Callable[[], Any] | None:
    """glibc's malloc_trim(0): hands the free pages of every malloc arena back to the OS (None without glibc)."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


class BodyParser:
    """Runs `work(raw)` (parse and check a body) on a worker thread: bodies over `LARGE_BODY_BYTES` one at a time,
    smaller ones on anyio's shared threads. `TRIM_AFTER_S` after the last large one, the memory of the burst goes
    back to the OS: its cyclic garbage is collected (its parses paused the collector) and the heap trimmed."""

    def __init__(self) -> None:
        self.large = anyio.CapacityLimiter(1)
        self.trim = _malloc_trim()
        self.trims = 0
        self._quiet: asyncio.TimerHandle | None = None
        self._trimming: asyncio.Future | None = None

    async def run(self, work: Callable[[bytes], R], raw: bytes) -> R:
        """`work(raw)` on a thread; the caller should hold no other reference to `raw`, so that it is freed here."""
        if len(raw) <= LARGE_BODY_BYTES:
            return await anyio.to_thread.run_sync(work, raw)
        try:
            return await anyio.to_thread.run_sync(functools.partial(_without_gc, work), raw, limiter=self.large)
        finally:
            del raw
            if self._quiet is not None:
                self._quiet.cancel()
            self._quiet = asyncio.get_running_loop().call_later(TRIM_AFTER_S, self._when_quiet)

    def _when_quiet(self) -> None:
        self._quiet = None
        if not self.large.borrowed_tokens:  # else the parse running now schedules the next attempt
            self._trimming = asyncio.ensure_future(anyio.to_thread.run_sync(self._hand_back))

    def _hand_back(self) -> None:
        gc.collect()
        if self.trim is not None:
            self.trim()
        self.trims += 1
