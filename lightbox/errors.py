"""Errors with one-line messages a user can act on.

Each names the file, field or item and the value that was wrong. The Prefect layer decides what
is retried: only :class:`TransientError` (and built-in timeouts/connection errors) are.
"""

from __future__ import annotations


class LightboxError(Exception):
    """Base class: ``str(err)`` is a one-line, user-facing reason."""


class SpecError(LightboxError):
    """A brand spec or channel preset file is unreadable or invalid."""


class CatalogError(LightboxError):
    """The catalog as a whole cannot be read (missing file, unknown layout, unreadable format)."""


class ValidationThresholdError(LightboxError):
    """Too large a share of the catalog is invalid, per the brand spec's threshold."""


class StorageError(LightboxError):
    """Output storage cannot be read or written (permission, missing bucket...)."""


class OutputRootError(StorageError):
    """An output root that is none of a local path, file://PATH or s3://BUCKET[/PREFIX] (refused before
    anything is written)."""


class ItemError(LightboxError):
    """One product cannot be processed (corrupt image, missing file, ...).

    Reported per item and never retried: the rest of the catalog goes on.
    """


class TransientError(LightboxError):
    """A failure worth retrying (timeout, throttling, 5xx)."""


def first_line(e: BaseException, limit: int = 200) -> str:
    """``TypeName: first line of the message`` (cut to ``limit``), for a one-line reason about an unexpected
    error whose traceback goes to the log."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:limit]}" if text else type(e).__name__
