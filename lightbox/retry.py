"""Which failures are worth retrying, and retrying them within a time budget.

Transient: timeouts, refused/reset connections (the storage clients' own classes included: botocore's
EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError, ReadTimeoutError; aiohttp's client
connection errors, as s3fs goes through aiobotocore), throttling (429) and 5xx - found on the exception or
anywhere along its chain of causes. Everything else (permission, missing object, bad input) is not.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import time
from collections.abc import Callable
from typing import TypeVar

from lightbox.errors import TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_ERRNOS = {errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNREFUSED, errno.EAGAIN, errno.EPIPE, errno.EHOSTUNREACH}
DEFAULT_STORAGE_RETRY_S = 150.0


def _network_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = []
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError

        found += [BotoConnectionError, HTTPClientError]
    except ImportError:
        pass
    try:  # a database that is down, restarting or locked (the run state): the chunk is retried
        from sqlalchemy.exc import OperationalError

        found.append(OperationalError)
    except ImportError:
        pass
    try:
        from aiohttp import ClientConnectionError, ServerTimeoutError

        found += [ClientConnectionError, ServerTimeoutError]
    except ImportError:
        pass
    return tuple(found)


_NETWORK_ERRORS = _network_errors()


def _transient_one(exc: BaseException) -> bool | None:
    """True/False when this exception decides it, None to look at its cause."""
    if isinstance(exc, (TransientError, TimeoutError, ConnectionError, *_NETWORK_ERRORS)):
        return True
    if isinstance(exc, PermissionError | FileNotFoundError):
        return False
    if isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS:
        return True
    status = getattr(exc, "status", None) or getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int):
        return status >= 500 or status == 429
    return None


def is_transient(exc: BaseException | None) -> bool:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen and len(seen) < 10:
        seen.add(id(exc))
        verdict = _transient_one(exc)
        if verdict is not None:
            return verdict
        exc = exc.__cause__ or exc.__context__
    return False


def storage_retry_budget() -> float:
    """``$LIGHTBOX_STORAGE_RETRY_S``, else 150 s: how long one storage operation waits out an outage."""
    return float(os.environ.get("LIGHTBOX_STORAGE_RETRY_S") or DEFAULT_STORAGE_RETRY_S)


def with_retries(fn: Callable[[], T], what: str, budget_s: float | None = None, *, first_delay_s: float = 0.5,
                 max_delay_s: float = 10.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, on_retry: Callable[[BaseException, float], None] | None = None) -> T:
    """``fn()``, retried on transient failures with exponential backoff and full jitter until ``budget_s``
    has passed since the first failure; then the last error is raised. Other failures raise at once.
    ``on_retry(error, wait_s)`` is told of each wait before it starts."""
    budget = storage_retry_budget() if budget_s is None else budget_s
    delay, started = first_delay_s, None
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            now = clock()
            started = now if started is None else started
            if now - started >= budget:
                raise
            wait = max(min(random.uniform(0, delay), budget - (now - started)), 0.05)  # jitter, not security
            if on_retry:
                on_retry(exc, wait)
            log.warning("%s: transient failure (%s); retrying for up to %.0f s more", what, type(exc).__name__,
                        budget - (now - started))
            sleep(wait)
            delay = min(delay * 2, max_delay_s)
