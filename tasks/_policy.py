"""Retry policy shared by the tasks: retry transient failures only (timeouts, throttling, 5xx).

A permission error, a bad catalog or a corrupt image is not retried: it is reported.
"""

from __future__ import annotations

import errno

from lightbox.errors import TransientError

TRANSIENT_ERRNOS = {errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNREFUSED, errno.EAGAIN, errno.EPIPE, errno.EHOSTUNREACH}
RETRY_DELAYS = [2, 10, 30]


def _network_errors() -> tuple[type[BaseException], ...]:
    """Connection-level errors of the storage clients (not subclasses of the built-in ConnectionError):
    botocore's EndpointConnectionError (refused), ConnectTimeoutError, ConnectionClosedError, ReadTimeoutError;
    aiohttp's client connection errors (s3fs goes through aiobotocore)."""
    found: list[type[BaseException]] = []
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError

        found += [BotoConnectionError, HTTPClientError]
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


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: timeouts, refused/reset connections (the storage clients' own classes included),
    throttling and 5xx - found on the exception or along its chain of causes (a StorageError wrapping an
    EndpointConnectionError is transient)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen and len(seen) < 10:
        seen.add(id(exc))
        verdict = _transient_one(exc)
        if verdict is not None:
            return verdict
        exc = exc.__cause__ or exc.__context__
    return False


def retry_transient(task, task_run, state) -> bool:  # noqa: ANN001 - Prefect's retry_condition_fn signature
    try:
        state.result()
    except BaseException as exc:  # noqa: BLE001 - we only classify it
        return is_transient(exc)
    return False


def ensure_concurrency_limit(name: str, slots: int) -> None:
    """Create the global concurrency limit if it does not exist (an existing one is left as set)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
            except ObjectAlreadyExists:
                pass
