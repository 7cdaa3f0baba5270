"""Retry policy shared by the tasks: retry transient failures only (timeouts, throttling, 5xx).

A permission error, a bad catalog or a corrupt image is not retried: it is reported.
"""

from __future__ import annotations

import threading
from types import TracebackType

from lightbox.records import Output
from lightbox.retry import is_transient
from lightbox.storage import Store

RETRY_DELAYS = [2, 10, 30]

_EARLIER: dict[str, tuple[int, float]] = {}  # task run id -> storage waits of its failed attempts (in this process)
_EARLIER_LOCK = threading.Lock()


class StorageAttempt:
    """One attempt of a task run that works on ``store``, so that a storage outage a task retry outlasted is
    counted, not lost with the failed attempt's store. Prefect retries a task in the process that ran it: a
    failing attempt leaves what its store waited out (and what earlier attempts did) for the next attempt,
    which charges it to its first output (:meth:`charge`); the exception of an attempt that fails carries the
    whole as ``storage_waits`` (retries, seconds), which the flow reads when the chunk fails for good."""

    def __init__(self, store: Store, task_run_id: str) -> None:
        self.store, self.key = store, task_run_id
        with _EARLIER_LOCK:
            self.earlier = _EARLIER.pop(task_run_id, (0, 0.0))

    def __enter__(self) -> StorageAttempt:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None:
            return
        total = (self.earlier[0] + self.store.outage_retries, round(self.earlier[1] + self.store.outage_waited_s, 2))
        if total[0]:
            with _EARLIER_LOCK:
                _EARLIER[self.key] = total
            try:
                exc.storage_waits = total  # type: ignore[attr-defined]
            except AttributeError:  # an exception type with __slots__: the next attempt still has it
                pass

    def charge(self, outputs: list[Output]) -> list[Output]:
        """``outputs`` with the earlier attempts' waits charged to the first one."""
        n, s = self.earlier
        if not n or not outputs:
            return outputs
        return [outputs[0].charged({"storage_retries": n, "storage_waited_s": s}), *outputs[1:]]


def retry_transient(task, task_run, state) -> bool:  # Prefect's retry_condition_fn signature
    try:
        state.result()
    except BaseException as exc:  # we only classify it
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
