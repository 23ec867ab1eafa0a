"""The HTTP/1.1 connection of `kronos serve`, with deadlines and a cap on how many are open.

uvicorn closes a connection left idle between requests (`timeout_keep_alive`) but sets no deadline on a request's
headers: a client that connects and stays silent, or sends a header line every few seconds, holds its socket (and
a file descriptor) for ever, and a thousand of them starve the server of descriptors. This protocol adds:

- **a header deadline**: a request's headers must be complete within `header_timeout_s` of the connection's
  opening (or of the request's first byte, on a kept-alive connection); a late one gets 408 (a silent one just a
  close) and the connection closes. Headers of more than `MAX_HEADER_BYTES` get 431.
- **a connection cap**: at most `max_connections` open. One more first evicts the connection that has waited
  longest for its headers (silent or slow, it has cost the app nothing yet); it is refused with 503 only when every
  open connection has a request in the app. A liveness probe thus gets through a flood of idle connections.

The body deadline is the app's (`bodies.BodyLimit` answers 408). What is cut is counted (`/healthz`) and logged at
most once per `LOG_EVERY_S`, so that a flood cannot flood the log.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kronos_cli.core.errors import KronosError
from kronos_cli.serve.responses import raw_error

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 2**10
LOG_EVERY_S = 10.0
LINGER_S = 1.0  # a refused connection reads (and drops) for this long, so its client sees the 503, not a reset
RESERVED_FILES = 64  # descriptors kept for what is not a connection: the listener, the loop, logs, model files

# what was cut -> how the log says it
CUTS = {
    "silent": "sent nothing within header_timeout_s",
    "slow_headers": "headers not complete within header_timeout_s (408)",
    "large_headers": f"headers over {MAX_HEADER_BYTES} bytes (431)",
    "slow_body": "body not complete within body_timeout_s (408)",
    "evicted": "waiting for headers, closed to make room under max_connections",
    "refused": "refused with 503: max_connections reached and every connection busy",
}


TOO_MANY = raw_error(
    503, "Service Unavailable", "too many open connections (max_connections); retry shortly", {"retry-after": "1"}
)


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take to send a request, how long an idle connection stays, how many may be open."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: float = 5.0
    max_connections: int = 1000

    def __post_init__(self) -> None:
        for name in ("header_timeout_s", "body_timeout_s", "keep_alive_s"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise KronosError(f"{name} must be > 0 seconds, got {value}", setting=name)
        if self.max_connections < 1:
            raise KronosError(f"max_connections must be >= 1, got {self.max_connections}", setting="max_connections")

    def describe(self) -> str:
        """The limits in a sentence, for the API's description."""
        return (
            f"request headers within {self.header_timeout_s:g} s of connecting (408 after), the body within "
            f"{self.body_timeout_s:g} s of the headers (408 after), idle keep-alive connections closed after "
            f"{self.keep_alive_s:g} s, at most {self.max_connections} open connections (beyond: the one waiting "
            f"longest for its headers is closed, or the new one answered 503), headers of at most "
            f"{MAX_HEADER_BYTES} bytes (431)"
        )


class Watch:
    """What the connections of one server share: their limits, how many are open, those waiting for their headers
    (longest first) and counts of what was cut, logged at most once per `LOG_EVERY_S`."""

    def __init__(self, limits: ConnectionLimits):
        self.limits = limits
        self.open = 0
        self.waiting: dict[GuardedHttp, None] = {}  # a dict keeps insertion order: the longest waiting first
        self.cut: Counter[str] = Counter()
        self._unlogged: Counter[str] = Counter()
        self._window: asyncio.TimerHandle | None = None

    def note(self, what: str) -> None:
        """Count a cut (one of `CUTS`); the first of a quiet spell is logged at once, the rest per window."""
        self.cut[what] += 1
        self._unlogged[what] += 1
        if self._window is None:
            self._log()

    def _log(self) -> None:
        self._window = None
        if self._write():
            self._window = asyncio.get_running_loop().call_later(LOG_EVERY_S, self._log)

    def _write(self) -> bool:
        if not self._unlogged:
            return False
        log.warning("connections cut: %s", "; ".join(f"{n} {CUTS[k]}" for k, n in self._unlogged.items()))
        self._unlogged.clear()
        return True

    def flush(self) -> None:
        """Log what is not logged yet (at shutdown)."""
        if self._window is not None:
            self._window.cancel()
            self._window = None
        self._write()

    def evict_one(self) -> bool:
        """Close the connection that has waited longest for its headers; False when none is waiting."""
        oldest = next(iter(self.waiting), None)
        if oldest is None:
            return False
        oldest.cut("evicted", TOO_MANY if oldest.began else None)
        return True

    def stats(self) -> dict[str, Any]:
        return {"open": self.open, "max": self.limits.max_connections, "cut": {k: self.cut[k] for k in CUTS}}


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with the header deadline, the header size bound and the connection cap."""

    def __init__(self, *args: Any, watch: Watch, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.watch = watch
        self.deadline: asyncio.TimerHandle | None = None
        self.began = False  # a byte of the awaited request has come
        self.in_headers = False  # a request has begun and its headers are not complete
        self.header_bytes = 0
        self.refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.watch.open += 1
        if self.watch.open > self.watch.limits.max_connections and not self.watch.evict_one():
            self._refuse()
            return
        self._await_headers()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.watch.waiting.pop(self, None)
        self.watch.open -= 1
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        waiting = self in self.watch.waiting
        if waiting and not self.began:
            self.began = True
            if self.deadline is None:  # the first byte after a kept-alive response
                self._arm()
        counted = waiting or self.in_headers
        super().data_received(data)
        if counted and self.in_headers:
            self.header_bytes += len(data)
            if self.header_bytes > MAX_HEADER_BYTES:
                message = f"the request headers exceed {MAX_HEADER_BYTES} bytes"
                self.cut("large_headers", raw_error(431, "Request Header Fields Too Large", message))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_headers, self.header_bytes = True, 0

    def on_headers_complete(self) -> None:
        self.in_headers = False
        self.watch.waiting.pop(self, None)
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        idle = not self.pipeline
        super().on_response_complete()  # arms uvicorn's keep-alive timer when no request is pipelined
        if idle and not self.transport.is_closing():
            self._await_headers()

    def _await_headers(self) -> None:
        """Join the connections waiting for headers (the deadline starts at the opening or the first byte)."""
        self.watch.waiting[self] = None
        self.began = False

    def _arm(self) -> None:
        self._disarm()
        self.deadline = self.loop.call_later(self.watch.limits.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _headers_late(self) -> None:
        self.deadline = None
        if not self.began:
            self.cut("silent", None)
            return
        message = f"the request headers did not arrive within {self.watch.limits.header_timeout_s:g} s"
        self.cut("slow_headers", raw_error(408, "Request Timeout", message))

    def cut(self, what: str, answer: bytes | None) -> None:
        """Close the connection (after `answer`, when given) and count why."""
        self.watch.note(what)
        self.watch.waiting.pop(self, None)
        self._disarm()
        if not self.transport.is_closing():
            if answer:
                self.transport.write(answer)
            self.transport.close()

    def _refuse(self) -> None:
        self.refused = True
        self.watch.note("refused")
        self.transport.write(TOO_MANY)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)


def fit_to_open_files(max_connections: int) -> int:
    """`max_connections`, lowered (with a warning) to what the open-file limit (`ulimit -n`) leaves after
    `RESERVED_FILES`: past it, accept() would fail and nothing new, not even /healthz, would get in."""
    try:
        import resource  # lazy: Unix only; elsewhere the limit is not known here
    except ImportError:
        return max_connections
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= max_connections + RESERVED_FILES:
        return max_connections
    fitted = max(1, soft - RESERVED_FILES)
    log.warning(
        "max_connections %d lowered to %d: the open-file limit is %d (ulimit -n) and %d are kept for the rest",
        max_connections,
        fitted,
        soft,
        RESERVED_FILES,
    )
    return fitted
