"""Storage behind one small interface: a local directory or an S3 prefix.

Writes are atomic: a reader sees the old object or the new one, never a partial one. On local disk
that is a temporary file in the same directory and ``os.replace``; on S3 a single PUT (or a server-side
copy), which S3 makes visible only when complete. Provider errors become built-in exceptions with the
URI named (missing -> FileNotFoundError, denied -> PermissionError) wrapped in StorageError.
Credentials and endpoints come from the environment (AWS_* variables, LIGHTBOX_S3_ENDPOINT_URL).
An output root is a local path, ``file://PATH`` or ``s3://BUCKET[/PREFIX]`` and nothing else: every
:class:`Store` checks its root with :func:`parse_output_root` before it touches storage.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import re
import threading
import time
import uuid
from typing import Any

import fsspec
from fsspec.core import url_to_fs

from lightbox.errors import OutputRootError, StorageError, first_line
from lightbox.retry import with_retries

log = logging.getLogger(__name__)


def storage_options_for(uri: str) -> dict[str, Any]:
    """Options for the URI's filesystem, from the environment (never from code or config files)."""
    if uri.startswith(("s3://", "s3a://")):
        endpoint = os.environ.get("LIGHTBOX_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
        opts: dict[str, Any] = {}
        if endpoint:
            opts["client_kwargs"] = {"endpoint_url": endpoint}
        return opts
    return {}


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = url_to_fs(uri, **storage_options_for(uri))
    return fs, path


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def join_uri(base: str, *parts: str) -> str:
    base = base.rstrip("/")
    return "/".join([base, *[p.strip("/") for p in parts if p]])


def resolve_relative(ref: str, base_uri: str) -> str:
    """A reference relative to the catalog's folder becomes absolute; absolute ones pass through."""
    if not ref or "://" in ref or ref.startswith("/"):
        return ref
    if base_uri.startswith("file://"):
        base_uri = base_uri[len("file://") :]
    parent = base_uri.rsplit("/", 1)[0] if "/" in base_uri else "."
    if "://" not in parent:
        return os.path.normpath(os.path.join(os.path.abspath(parent), ref))
    return posixpath.normpath(join_uri(parent, ref)).replace(":/", "://", 1)


SOURCE_SCHEMES = ("", "file", "s3", "s3a")


def read_bytes(uri: str) -> bytes:
    """Read a catalog or config file: local paths, file:// and s3:// only. Source images go through
    :mod:`lightbox.fetch` (its policy decides HTTP(S), hosts, sizes)."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme not in SOURCE_SCHEMES:
        raise PermissionError(f"{uri}: scheme '{scheme}' is not enabled for catalog and config files (enabled: path, file://, s3://)")
    fs, path = filesystem(uri)
    try:
        return fs.cat_file(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{uri}: no such file") from None
    except IsADirectoryError:
        raise FileNotFoundError(f"{uri}: is a directory, not a file") from None


PROBE_WAIT_S = 20.0  # the start-up write probe's wall-time bound (an endpoint that never answers)
OUTPUT_ROOT_FORMS = "a local path, file://PATH or s3://BUCKET[/PREFIX]"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3's rules for bucket names (general purpose)
_IPV4 = re.compile(r"\d+\.\d+\.\d+\.\d+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_SCHEME_TYPO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:(/|$)")  # "s3:/b", "s3:": a URI with its "//" mistyped
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SHOWN_MAX = 200


def _shown(value: str) -> str:
    """The value for an error message: quoted, one line, with any credentials and query strings hidden
    (``s3://KEY:SECRET@bucket`` -> ``s3://***@bucket``, ``az://c/x?sig=...`` -> ``az://c/x?***``)."""
    scheme, sep, rest = value.partition("://")
    if sep:
        rest, query, _ = rest.partition("?")
        if "@" in rest:  # user info (a secret may hold "/": hide everything before the last "@")
            rest = "***@" + rest.rsplit("@", 1)[1]
        value = f"{scheme}://{rest}" + ("?***" if query else "")
    text = repr(value)
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 4] + "...'"


def _bucket_problem(bucket: str) -> str | None:
    if not bucket:
        return "no bucket"
    if "@" in bucket or ":" in bucket:
        return "credentials do not belong in the URI (they come from the AWS_* variables)"
    if not _BUCKET.fullmatch(bucket) or ".." in bucket or _IPV4.fullmatch(bucket) or bucket.startswith("xn--") \
            or bucket.endswith(("-s3alias", "--ol-s3")):
        return "not a valid bucket name (3-63 lowercase letters, digits, dots and hyphens)"
    return None


def parse_output_root(value: str, option: str = "--out") -> str:
    """The output root ``value`` checked, or :class:`OutputRootError` naming ``option`` and the value.

    Accepted: a local path (relative or absolute), ``file://PATH`` and ``s3://BUCKET[/PREFIX]`` (scheme
    names in any case; returned in lower case, the rest unchanged). Refused: an empty or blank value, a NUL
    byte or other control character, ``s3://`` without a valid bucket name, ``file://`` without a path, any other scheme (memory://,
    az://, gs://, ftp://, http://...), a mistyped scheme (``s3:/bucket``) and fsspec's chained URLs (``::``).
    Nothing is created or contacted: this is a check of the text alone.
    """

    def refuse(why: str) -> OutputRootError:
        shown = _shown(value) if isinstance(value, str) else type(value).__name__
        return OutputRootError(f"{option} {shown}: {why}; an output root is {OUTPUT_ROOT_FORMS}")

    if not isinstance(value, str):
        raise refuse("not a string")
    if "\x00" in value:
        raise refuse("contains a NUL byte")
    if not value.strip():
        raise refuse("empty" if not value else "blank")
    if _CONTROL.search(value):
        raise refuse("contains a control character (a newline, a tab...)")
    scheme, sep, rest = value.partition("://")
    if sep and _SCHEME.fullmatch(scheme):
        if scheme.lower() == "file":
            if not rest.strip():
                raise refuse("file:// needs a path (file:///abs/dir or file://rel/dir)")
            return "file://" + rest
        if scheme.lower() == "s3":
            problem = _bucket_problem(rest.split("/", 1)[0])
            if problem:
                raise refuse(problem)
            return "s3://" + rest
        raise refuse(f"scheme {scheme.lower()}:// is not supported")
    if "://" in value or "::" in value:
        raise refuse("not a supported URI")
    if _SCHEME_TYPO.match(value) or value.startswith("data:"):
        raise refuse("looks like a mistyped URI")
    return value


def _probe_reason(e: BaseException) -> str:
    """One line on why the output root's start-up probe failed. Provider messages name no secret (botocore's
    never print keys); only their first line is kept."""
    if isinstance(e, PermissionError):
        return "permission denied"
    name = type(e).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return "no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ReadTimeoutError"):
        return f"the storage endpoint did not answer ({name}); check LIGHTBOX_S3_ENDPOINT_URL and the network"
    return f"{name}: {e.strerror}" if getattr(e, "strerror", None) else first_line(e)


TMP_DIR = ".lightbox-tmp"  # local temporary files live here, never in a live folder
STALE_TMP_S = 3600


class Store:
    """An output root: every key is relative to it (``acme-home/SKU-1/amazon_main.jpg``).

    Every operation waits out a storage outage: transient failures (refused or reset connections,
    timeouts, throttling, 5xx) are retried with exponential backoff and jitter for up to ``retry_s``
    (``$LIGHTBOX_STORAGE_RETRY_S``, default 150 s) per object, inside the task, before the error is raised.
    """

    def __init__(self, root_uri: str, retry_s: float | None = None):
        root_uri = parse_output_root(root_uri, option="output root")  # before anything touches storage
        self.retry_s = retry_s
        self.outage_retries = 0  # transient failures waited out by this store (for the run report)
        self.outage_waited_s = 0.0
        self.root_uri = root_uri.rstrip("/") or "/"
        self.fs, self.root = filesystem(self.root_uri)
        self.local = is_local(self.fs)
        if self.local:
            self.root = os.path.abspath(self.root)

    def path(self, key: str) -> str:
        return posixpath.join(self.root, key) if not self.local else os.path.join(self.root, key)

    def uri(self, key: str) -> str:
        if self.local:
            return self.path(key)
        return join_uri(self.root_uri, key)

    def key_of(self, uri: str) -> str:
        """Inverse of :meth:`uri` for URIs under this root."""
        prefix = self.uri("")
        if not uri.startswith(prefix):
            raise ValueError(f"{uri} is not under {prefix}")
        return uri[len(prefix) :].lstrip("/")

    def _retrying(self, fn, key: str, action: str, budget_s: float | None = None):
        """``fn`` with the outage budget. The time an operation that met failures took, from its first attempt to
        its answer (or its last error), is counted as waited: the storage client's own retries and connection
        timeouts inside each attempt are part of an outage, not only the backoff sleeps between attempts."""
        failures = 0

        def counted(_: BaseException, wait_s: float) -> None:
            nonlocal failures
            failures += 1
            self.outage_retries += 1

        started = time.monotonic()
        try:
            return with_retries(fn, f"{self.uri(key)}: {action}", self.retry_s if budget_s is None else budget_s, on_retry=counted)
        finally:
            if failures:
                self.outage_waited_s += time.monotonic() - started

    def _wrap(self, err: Exception, key: str, action: str) -> StorageError:
        kind = "permission denied" if isinstance(err, PermissionError) else str(err) or type(err).__name__
        return StorageError(f"{self.uri(key)}: cannot {action}: {kind}")

    def check_writable(self, wait_s: float = PROBE_WAIT_S) -> None:
        """Fail early, with the URI named, when the output root cannot be written - within ``wait_s`` seconds
        also when the endpoint takes the connection and never answers (the client's own timeouts and retries
        would wait minutes): the probe runs in a daemon thread, left behind if it hangs."""
        probe = f".lightbox-probe-{uuid.uuid4().hex}"
        done: list[BaseException | None] = []

        def attempt() -> None:
            try:
                self._retrying(lambda: self._write(probe, b"ok"), probe, "write", budget_s=10)  # a start-up check: short
                self.fs.rm_file(self.path(probe))
                done.append(None)
            except Exception as e:  # a start-up probe: whatever the storage client raises becomes one line
                done.append(e)

        worker = threading.Thread(target=attempt, name="lightbox-output-probe", daemon=True)
        worker.start()
        worker.join(wait_s)
        if not done:
            raise StorageError(f"{self.root_uri}: output is not writable (the storage endpoint did not answer within "
                               f"{wait_s:.0f} s; check LIGHTBOX_S3_ENDPOINT_URL and the network)")
        if (e := done[0]) is not None:
            cause = e.__cause__ if isinstance(e, StorageError) and e.__cause__ else e
            raise StorageError(f"{self.root_uri}: output is not writable ({_probe_reason(cause)})") from e

    def exists(self, key: str) -> bool:
        return self._retrying(lambda: self.fs.exists(self.path(key)), key, "check")

    def tally(self) -> tuple[int, float]:
        """(transient failures waited out, seconds waited) so far: take one before an output's storage work and
        pass it to :meth:`waited_since` after, to charge the wait to that output."""
        return self.outage_retries, self.outage_waited_s

    def waited_since(self, mark: tuple[int, float]) -> dict[str, float]:
        """What :meth:`tally` grew by since ``mark``, as Output fields (empty when nothing was waited out)."""
        retries = self.outage_retries - mark[0]
        return {"storage_retries": retries, "storage_waited_s": round(self.outage_waited_s - mark[1], 2)} if retries else {}

    def stamp(self, key: str) -> tuple[int, str | None] | None:
        """(size, ETag) of the object as the store reports it now (one HEAD; the ETag is None on local disk),
        or None when there is none. An object store changes the ETag whenever the object is written."""
        def stamp() -> tuple[int, str | None] | None:
            try:
                if self.local:
                    return int(self.fs.size(self.path(key))), None
                info = self.fs.info(self.path(key), refresh=True)
            except FileNotFoundError:
                return None
            etag = info.get("ETag") or info.get("etag")
            return int(info["size"]), str(etag).strip('"') if etag else None

        return self._retrying(stamp, key, "check")

    def read(self, key: str) -> bytes:
        def read() -> bytes:
            try:
                return self.fs.cat_file(self.path(key))
            except FileNotFoundError:
                raise
            except OSError as e:
                raise self._wrap(e, key, "read") from e

        return self._retrying(read, key, "read")

    def sha256(self, key: str) -> str | None:
        try:
            return hashlib.sha256(self.read(key)).hexdigest()
        except FileNotFoundError:
            return None

    def _tmp_path(self) -> str:
        """A temporary file beside the root (same filesystem, so the rename is atomic), outside live folders."""
        directory = os.path.join(self.root, TMP_DIR)
        os.makedirs(directory, exist_ok=True)
        return os.path.join(directory, f"{uuid.uuid4().hex}.tmp")

    def sweep_temp(self, older_than_s: float = STALE_TMP_S) -> int:
        """Remove temporary files a killed process left (local disk; S3 writes have none). Returns how many."""
        if not self.local:
            return 0
        directory, removed, now = os.path.join(self.root, TMP_DIR), 0, time.time()
        for entry in os.scandir(directory) if os.path.isdir(directory) else []:
            try:
                if entry.is_file() and now - entry.stat().st_mtime > older_than_s:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def _place(self, path: str, data: bytes, put) -> None:  # os.replace or os.link
        """Write ``data`` to a temporary file (synced), then ``put(tmp, path)``; the temporary never stays."""
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = self._tmp_path()
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            put(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def write_atomic(self, key: str, data: bytes) -> None:
        self._retrying(lambda: self._write(key, data), key, "write")

    def _write(self, key: str, data: bytes) -> None:
        path = self.path(key)
        try:
            if self.local:
                self._place(path, data, os.replace)
            else:
                self.fs.pipe_file(path, data)  # one PUT: visible only when complete
        except OSError as e:
            raise self._wrap(e, key, "write") from e

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if it does not exist (True), else leave it (False); atomic either way. Local disk:
        a temporary file hard-linked into place (link fails on an existing name); S3: ``If-None-Match: *``."""
        return self._retrying(lambda: self._create_exclusive(key, data), key, "create")

    def _create_exclusive(self, key: str, data: bytes) -> bool:
        path = self.path(key)
        try:
            if self.local:
                try:
                    self._place(path, data, os.link)  # link fails on an existing name
                except FileExistsError:
                    return False
                return True
            self.fs.pipe_file(path, data, mode="create")
            return True
        except FileExistsError:
            return False
        except OSError as e:
            raise self._wrap(e, key, "create") from e

    def delete(self, key: str) -> None:
        try:
            self.fs.rm_file(self.path(key))
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("could not delete %s: %s", self.uri(key), e)

    def copy_atomic(self, src_key: str, dst_key: str) -> None:
        if self.local:
            self.write_atomic(dst_key, self.read(src_key))
            return

        def copy() -> None:
            try:
                self.fs.copy(self.path(src_key), self.path(dst_key))  # server-side CopyObject
            except OSError as e:
                raise self._wrap(e, dst_key, "copy") from e

        self._retrying(copy, dst_key, "copy")

    def delete_prefix(self, key: str) -> None:
        path = self.path(key)
        try:
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("could not clean up %s: %s", self.uri(key), e)

    def children(self, key: str) -> list[str]:
        """Names directly under ``key`` (files and folders); [] when there is nothing."""
        try:
            found = self.fs.ls(self.path(key), detail=False)
        except FileNotFoundError:
            return []
        return sorted(posixpath.basename(str(p).rstrip("/")) for p in found)

    def list(self, key: str) -> list[str]:
        try:
            found = self.fs.find(self.path(key))
        except FileNotFoundError:
            return []
        base = self.path("")
        return sorted(p[len(base) :].lstrip("/") for p in found)
