"""Retry policy shared by the tasks: retry transient failures only (timeouts, throttling, 5xx).

A permission error, a bad catalog or a corrupt image is not retried: it is reported.
"""

from __future__ import annotations

from lightbox.retry import is_transient

RETRY_DELAYS = [2, 10, 30]


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
