"""Graceful shutdown: on SIGTERM or SIGINT, finish the requests in flight, for up to a grace period, while new ones
get 503; then stop.

uvicorn's own shutdown closes the listening socket at once (a new request meets a refused connection, not an
answer) and cancels what runs past `timeout_graceful_shutdown` with a bare 500. Here the first signal only starts
draining: the socket stays open, `DrainGate` answers every new request 503 (with `Connection: close`), and
`DrainingServer` hands over to uvicorn's shutdown once the admitted requests are answered. Those still running when
the grace is over are cancelled and answered 503 (their forecasts stop at the next decode step). A second signal
ends the grace (uvicorn's shutdown then waits `STRAGGLER_S` more); a third SIGINT forces the exit.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import threading
import time

import uvicorn

from kronos_cli.serve.responses import error_response

log = logging.getLogger(__name__)
STRAGGLER_S = 5.0  # after the grace: how long cancelled requests get to answer 503 before uvicorn takes over


class Drain:
    """Whether the server is draining, and the requests it admitted before (tasks, so that they can be cut)."""

    def __init__(self, grace_s: float):
        self.grace_s = grace_s
        self.began: float | None = None
        self.requests: set[asyncio.Task] = set()
        self.cut = False

    @property
    def draining(self) -> bool:
        return self.began is not None

    def begin(self) -> None:
        if self.began is None:
            self.began = time.monotonic()

    def retry_after_s(self) -> int:
        left = self.grace_s - (time.monotonic() - self.began) if self.began is not None else self.grace_s
        return max(1, math.ceil(left))

    def settled(self) -> bool:
        """True once every admitted request is answered; when the grace is over, the rest are cut."""
        assert self.began is not None
        over = time.monotonic() - self.began - self.grace_s
        if not self.requests or over >= STRAGGLER_S:
            return True
        if over >= 0 and not self.cut:
            self.cut = True
            left = len(self.requests)
            log.warning("shutdown_grace_s %g s is over: cutting %d request(s) in flight", self.grace_s, left)
            for task in self.requests:
                task.cancel()
        return False


class DrainGate:
    """Admits requests while the server is not draining and answers 503 after; an admitted request runs as its own
    task, so that the grace's end can cut it (its caller then gets 503, not a dropped connection)."""

    def __init__(self, app, drain: Drain):
        self.app, self.drain = app, drain

    def _unavailable(self, message: str):
        headers = {"Retry-After": str(self.drain.retry_after_s()), "Connection": "close"}
        return error_response(503, [(None, message)], headers)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.drain.draining:
            return await self._unavailable("the server is shutting down; retry elsewhere or once it is back")(
                scope, receive, send
            )
        started = False

        async def send_then_close(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if self.drain.draining:  # answered while draining: the client should not reuse the connection
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, send_then_close))
        self.drain.requests.add(task)
        task.add_done_callback(self.drain.requests.discard)
        try:
            await task
        except asyncio.CancelledError:
            if not (self.drain.cut and task.cancelled()) or started:
                raise
            grace = self.drain.grace_s
            message = f"the server shut down before this request was answered (shutdown_grace_s {grace:g} s)"
            await self._unavailable(message)(scope, receive, send)


class DrainingServer(uvicorn.Server):
    """uvicorn's server whose first SIGTERM/SIGINT starts draining; its shutdown begins once the drain settled."""

    def __init__(self, config: uvicorn.Config, drain: Drain):
        super().__init__(config)
        self.drain = drain
        self._signal: tuple | None = None
        self._announced = False

    def run(self, sockets=None) -> None:
        """uvicorn's run. uvicorn re-raises the signal that stopped it once it is done, which for SIGTERM would end
        the process by the signal; the drain was the answer to that signal, so the process then ends normally."""
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, lambda *_: None) if main else None
        try:
            super().run(sockets)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def handle_exit(self, sig, frame) -> None:
        if self.drain.draining:  # a second signal: stop now (uvicorn's own handling, which a third SIGINT forces)
            return super().handle_exit(sig, frame)
        self._signal = (sig, frame)
        self.drain.begin()

    async def on_tick(self, counter: int) -> bool:
        if self._signal is not None and not self.should_exit:
            if not self._announced:
                self._announced = True
                log.info(
                    "shutting down: finishing %d request(s) in flight (for up to %g s, shutdown_grace_s); new "
                    "requests get 503",
                    len(self.drain.requests),
                    self.drain.grace_s,
                )
            if self.drain.settled():
                super().handle_exit(*self._signal)  # uvicorn's shutdown, which re-raises the signal after it
        return await super().on_tick(counter)
