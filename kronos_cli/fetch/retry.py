"""Retrying a source's transient failures (rate limits, dropped connections, timeouts) with exponential back-off,
through tenacity; anything else (an unknown symbol, a bad interval) fails at once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from kronos_cli.fetch.request import Politeness

log = logging.getLogger(__name__)
T = TypeVar("T")


NETWORK_ERRORS = {"ConnectionError", "Timeout", "ConnectTimeout", "ReadTimeout", "TimeoutError"}


def network_error(exc: BaseException) -> bool:
    """A dropped connection or a timeout, whichever HTTP library raised it (requests, curl_cffi, urllib3 and the
    builtins name theirs alike)."""
    return any(c.__name__ in NETWORK_ERRORS for c in type(exc).__mro__)


class SymbolError(Exception):
    """A symbol the source cannot serve (unknown, delisted, no bars in the range): not retried, reported."""


def with_retries(call: Callable[[], T], transient: Callable[[BaseException], bool], policy: Politeness, what: str) -> T:
    """`call()`, retried while it raises what `transient` accepts, at most `policy.attempts` times in all."""
    # lazy: tenacity comes with the fetch extras, not with the base install
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

    def before_sleep(state) -> None:
        exc = state.outcome.exception()
        log.warning(
            "%s: %s (%s); retry %d of %d in %.1f s",
            what,
            type(exc).__name__,
            str(exc).splitlines()[0][:200] if str(exc) else "",
            state.attempt_number,
            policy.attempts - 1,
            state.next_action.sleep,
        )

    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait_exponential(multiplier=policy.first_wait_s, max=policy.max_wait_s),
        retry=retry_if_exception(transient),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(call)


class Retrier:
    """A source's requests under one policy: `retrier(call, transient, what)`."""

    def __init__(self, policy: Politeness) -> None:
        self.policy = policy

    def __call__(self, call: Callable[[], T], transient: Callable[[BaseException], bool], what: str) -> T:
        return with_retries(call, transient, self.policy, what)
