"""Source images from local disk, S3 or HTTP(S), fetched under a policy and cached by content.

The policy (:class:`~lightbox.fetch_policy.FetchPolicy`, YAML) says which schemes and hosts may be read, how big a body may
be, how long to wait and how often to retry. Its defaults are the safe ones:

- schemes ``https`` and ``s3``; ``file`` (plain paths) is enabled for a catalog that is itself on local
  disk (the same trust domain), and ``http`` only when listed;
- any public host; addresses that are loopback, private, link-local (169.254.0.0/16, cloud metadata),
  multicast, reserved or unspecified are refused unless a network in ``allow_networks`` covers them.
  The host name is resolved once, every address is checked, and the connection goes to a checked
  address (no second lookup that DNS rebinding could answer differently); every redirect is checked
  again the same way;
- a body over ``max_bytes`` is refused from its Content-Length, or stopped when it grows past it;
- the Content-Type must be one of ``content_types`` and the first bytes must be an image's magic;
- timeouts on connect and on every read, plus a deadline for the whole body; only transient failures
  (connection errors, timeouts, 429 and 5xx) are retried, with exponential backoff;
- at most ``per_host_connections`` downloads run at once against one host (per process);
- credentials (an Authorization header from an environment variable) go only to the exact host they
  are configured for, never to a host a redirect leads to.

Cache: bodies are stored once by SHA-256 (``blobs/<sha>``) and indexed by URL with the validators the
server gave (``ETag``, ``Last-Modified``; for S3 the object's ETag). A later run revalidates with a
conditional request and downloads nothing on ``304 Not Modified``; within one run a URL is revalidated
once, however many products share it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import json
import logging
import os
from urllib.parse import unquote
import socket
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import certifi
import urllib3

from lightbox.errors import ItemError
from lightbox.fetch_policy import FetchPolicy
from lightbox.storage import filesystem

log = logging.getLogger(__name__)

_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
_REDIRECT_STATUS = {301, 302, 303, 307, 308}
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598; not "private" to Python, internal all the same
_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"BM", "image/bmp"),
)


class FetchError(ItemError):
    """A source image could not be fetched; the message names the URL and why."""


class FetchRefused(FetchError):
    """The policy forbids this fetch (scheme, host, address, size, type). Never retried."""


class _Transient(FetchError):
    """Worth another try (connection error, timeout, 429/5xx)."""


def sniff(data: bytes) -> str | None:
    """The image type the first bytes say, or None."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _host_ok(host: str, policy: FetchPolicy) -> bool:
    h = host.lower().rstrip(".")
    return any(fnmatch.fnmatchcase(h, p.lower()) for p in policy.allow_hosts) and not any(
        fnmatch.fnmatchcase(h, p.lower()) for p in policy.deny_hosts
    )


def refusal(uri: str, policy: FetchPolicy) -> str | None:
    """Why the policy refuses ``uri`` before any lookup (its scheme, its host's allow/deny lists, a literal address
    in a private, loopback or link-local range - a cloud metadata address), else None. The job API checks photos
    with it at submit; a run still resolves names and checks every address (:meth:`SourceFetcher.read`)."""
    scheme = urllib.parse.urlsplit(uri).scheme.lower() if "://" in uri else "file"
    scheme = "s3" if scheme == "s3a" else scheme
    if scheme not in policy.schemes:
        return f"scheme {scheme!r} is not allowed by the fetch policy (allowed: {', '.join(policy.schemes)})"
    if scheme not in ("http", "https"):
        return None
    host = urllib.parse.urlsplit(uri).hostname or ""
    if not host:
        return "no host in the URL"
    if not _host_ok(host, policy):
        return f"host {host!r} is not allowed by the fetch policy (allow_hosts/deny_hosts)"
    try:
        literal = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None
    return _address_problem(literal, policy)


def _address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, policy: FetchPolicy) -> str | None:
    mapped = getattr(ip, "ipv4_mapped", None)
    ip = mapped or ip
    if any(ip in ipaddress.ip_network(n, strict=False) for n in policy.allow_networks):
        return None
    for test, what in (
        (ip.is_loopback, "a loopback"), (ip.is_link_local, "a link-local"), (ip.is_multicast, "a multicast"),
        (ip.is_unspecified, "an unspecified"), (ip.is_private, "a private"), (ip.is_reserved, "a reserved"),
        (ip.version == 4 and ip in _SHARED, "a shared (carrier-grade NAT)"),
    ):
        if test:
            return f"{ip} is {what} address (allow it with the fetch policy's allow_networks)"
    return None


@dataclass
class FetchStats:
    """What one fetcher did, for the run log and the report."""

    counts: Counter = field(default_factory=Counter)  # downloaded, not_modified, reused, local, s3, refused, failed
    bytes_downloaded: int = 0

    def as_dict(self) -> dict[str, int]:
        return {**dict(self.counts), "bytes_downloaded": self.bytes_downloaded}


_HOST_SLOTS: dict[str, threading.BoundedSemaphore] = {}
_HOST_SLOTS_LOCK = threading.Lock()


def _host_slot(host: str, n: int) -> threading.BoundedSemaphore:
    with _HOST_SLOTS_LOCK:
        key = f"{host}#{n}"
        if key not in _HOST_SLOTS:
            _HOST_SLOTS[key] = threading.BoundedSemaphore(n)
        return _HOST_SLOTS[key]


class SourceFetcher:
    """Reads source images under a :class:`FetchPolicy`, through the content cache.

    ``run_id`` scopes "revalidated already": within one run each URL costs at most one request.
    """

    def __init__(self, policy: FetchPolicy | None = None, run_id: str = "", sleep=time.sleep):
        self.policy = policy or FetchPolicy()
        self.run_id = run_id
        self.cache = self.policy.cache_path()
        self.stats = FetchStats()
        self._sleep = sleep
        self._pools: dict[tuple, urllib3.connectionpool.HTTPConnectionPool] = {}
        self._lock = threading.Lock()
        self._prefetched: dict[str, bytes | Exception] = {}

    # -- public -------------------------------------------------------------------------------------
    def read(self, uri: str) -> bytes:
        """The bytes of one source image. Raises FetchError (or FileNotFoundError) naming the URI."""
        if uri in self._prefetched:
            got = self._prefetched[uri]
            if isinstance(got, Exception):
                raise got
            return got
        scheme = urllib.parse.urlsplit(uri).scheme.lower() if "://" in uri else "file"
        if scheme == "s3a":
            scheme = "s3"
        if scheme not in self.policy.schemes:
            self._count("refused")
            raise FetchRefused(
                f"{uri}: scheme '{scheme}' is not allowed by the fetch policy (allowed: {', '.join(self.policy.schemes)})"
            )
        if scheme in ("http", "https"):
            return self._http(uri)
        if scheme == "s3":
            return self._s3(uri)
        return self._file(uri)

    def prefetch(self, uris: list[str]) -> None:
        """Fetch many sources in parallel (bounded per host); :meth:`read` then returns them."""
        todo = [u for u in dict.fromkeys(uris) if "://" in u and not u.startswith("file://")]
        if len(todo) < 2:
            return

        def one(u: str) -> tuple[str, bytes | Exception]:
            try:
                return u, self.read(u)
            except (FetchError, OSError) as e:
                return u, e

        with ThreadPoolExecutor(max_workers=min(self.policy.parallel_downloads, len(todo))) as pool:
            for u, got in pool.map(one, todo):
                self._prefetched[u] = got

    # -- local and S3 -------------------------------------------------------------------------------
    def _file(self, uri: str) -> bytes:
        path = unquote(uri[len("file://") :]) if uri.startswith("file://") else uri
        if "\x00" in path:
            raise FetchRefused("local path contains a NUL byte")
        if self.policy.file_prefixes is not None:
            real = os.path.realpath(path)
            roots = [os.path.realpath(p) for p in self.policy.file_prefixes]
            if not any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots):
                self._count("refused")
                raise FetchRefused(f"{uri}: local file outside the folders the fetch policy allows")
            path = real
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"{uri}: no such file") from None
        if os.path.isdir(path):
            raise FileNotFoundError(f"{uri}: is a directory, not a file")
        self._check_size(uri, size)
        if size == 0:
            raise FetchRefused(f"{uri}: zero-byte image file")
        with open(path, "rb") as f:
            data = f.read()
        self._check_magic(uri, data)
        self._count("local")
        return data

    def _s3(self, uri: str) -> bytes:
        fs, path = filesystem(uri)
        try:
            info = fs.info(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"{uri}: no such file") from None
        if info.get("type") == "directory":
            raise FileNotFoundError(f"{uri}: is a directory, not a file")
        self._check_size(uri, int(info.get("size") or 0))
        etag = str(info.get("ETag") or info.get("etag") or "")
        entry = self._index_get(uri)
        if etag and entry and entry.get("etag") == etag:
            blob = self._blob(entry["sha256"])
            if blob is not None:
                self._count("reused")
                return blob
        data = fs.cat_file(path)
        self._check_size(uri, len(data))
        self._check_magic(uri, data)
        self._count("s3")
        self.stats.bytes_downloaded += len(data)
        self._store(uri, data, {"etag": etag})
        return data

    # -- HTTP(S) ------------------------------------------------------------------------------------
    def _http(self, uri: str) -> bytes:
        entry = self._index_get(uri)
        if entry and entry.get("run_id") == self.run_id and self.run_id:
            blob = self._blob(entry["sha256"])
            if blob is not None:
                self._count("reused")
                return blob
        attempt = 0
        while True:
            try:
                return self._http_once(uri, entry)
            except _Transient as e:
                if attempt >= self.policy.retries:
                    self._count("failed")
                    raise FetchError(f"{e} (gave up after {attempt + 1} attempts)") from None
                delay = self.policy.backoff_s * (2**attempt)
                log.info("retrying %s in %.2fs: %s", uri, delay, e)
                self._sleep(delay)
                attempt += 1
            except FetchRefused:
                self._count("refused")
                raise
            except FetchError:
                self._count("failed")
                raise

    def _http_once(self, uri: str, entry: dict | None) -> bytes:
        url = uri
        origin_host = urllib.parse.urlsplit(uri).hostname or ""
        deadline = time.monotonic() + self.policy.total_timeout_s
        for _hop in range(self.policy.max_redirects + 1):
            parts = urllib.parse.urlsplit(url)
            scheme, host = parts.scheme.lower(), (parts.hostname or "")
            if scheme not in self.policy.schemes or scheme not in ("http", "https"):
                raise FetchRefused(f"{uri}: redirect to {url}: scheme '{scheme}' is not allowed by the fetch policy")
            headers = {"User-Agent": self.policy.user_agent, "Accept": ", ".join(self.policy.content_types)}
            if url == uri and entry and self._blob(entry.get("sha256", "")) is not None:  # intact copy to revalidate
                if entry.get("etag"):
                    headers["If-None-Match"] = entry["etag"]
                if entry.get("last_modified"):
                    headers["If-Modified-Since"] = entry["last_modified"]
            env = self.policy.credentials.get(host)
            if env and host == origin_host and os.environ.get(env):
                headers["Authorization"] = os.environ[env]
            resp = self._open(uri, url, headers)
            complete = False  # only a fully read response returns its connection for reuse
            try:
                status = resp.status
                if status in _REDIRECT_STATUS:
                    location = resp.headers.get("Location")
                    if not location:
                        raise FetchError(f"{uri}: HTTP {status} without a Location")
                    url = urllib.parse.urljoin(url, location)
                    continue
                if status == 304 and entry:
                    blob = self._blob(entry["sha256"])
                    if blob is None:
                        raise _Transient(f"{uri}: 304 for a cache entry whose body is gone")
                    self._count("not_modified")
                    self._index_put(uri, {**entry, "run_id": self.run_id})
                    resp.drain_conn()
                    complete = True
                    return blob
                if status in _TRANSIENT_STATUS:
                    raise _Transient(f"{uri}: HTTP {status}")
                if status == 404 or status == 410:
                    raise FileNotFoundError(f"{uri}: HTTP {status} not found")
                if status != 200:
                    raise FetchError(f"{uri}: HTTP {status}")
                ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                if ctype not in self.policy.content_types:
                    raise FetchRefused(f"{uri}: content type {ctype or 'missing'!r} is not an allowed image type")
                length = resp.headers.get("Content-Length")
                if length and length.isdigit():
                    self._check_size(uri, int(length))
                data = self._read_body(uri, resp, deadline)
                complete = True
            finally:
                if not complete:
                    resp.close()
                resp.release_conn()
            self._check_magic(uri, data)
            self._count("downloaded")
            self.stats.bytes_downloaded += len(data)
            self._store(uri, data, {"etag": resp.headers.get("ETag"), "last_modified": resp.headers.get("Last-Modified"),
                                    "content_type": ctype, "final_url": url})
            return data
        raise FetchError(f"{uri}: more than {self.policy.max_redirects} redirects")

    def _read_body(self, uri: str, resp: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
        chunks, n = [], 0
        try:
            for chunk in resp.stream(64 * 1024):
                n += len(chunk)
                if n > self.policy.max_bytes:
                    raise FetchRefused(f"{uri}: body is over the fetch policy's max_bytes ({self.policy.max_bytes})")
                if time.monotonic() > deadline:
                    raise _Transient(f"{uri}: body not complete within {self.policy.total_timeout_s}s")
                chunks.append(chunk)
        except urllib3.exceptions.ReadTimeoutError:
            raise _Transient(f"{uri}: timed out reading the body (read_timeout_s {self.policy.read_timeout_s})") from None
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError) as e:
            raise _Transient(f"{uri}: connection broken while reading ({type(e).__name__})") from None
        return b"".join(chunks)

    def _resolve(self, uri: str, url: str, host: str, port: int) -> list[str]:
        if not host:
            raise FetchRefused(f"{uri}: no host in {url}")
        if not _host_ok(host, self.policy):
            raise FetchRefused(f"{uri}: host {host!r} is not allowed by the fetch policy (allow_hosts/deny_hosts)")
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise _Transient(f"{uri}: cannot resolve {host!r} ({e.strerror})") from None
        addrs = list(dict.fromkeys(info[4][0] for info in infos))
        for a in addrs:  # every address must pass, or a second lookup could pick the bad one
            problem = _address_problem(ipaddress.ip_address(a.split("%")[0]), self.policy)
            if problem:
                hop = "" if url == uri else f" (redirected to {url})"
                raise FetchRefused(f"{uri}{hop}: refused: {host} resolves to {problem}")
        return addrs

    def _open(self, uri: str, url: str, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
        parts = urllib.parse.urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        addrs = self._resolve(uri, url, host, port)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        default_port = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
        headers = {**headers, "Host": host if default_port else f"{host}:{port}"}
        last: Exception | None = None
        with _host_slot(host, self.policy.per_host_connections):
            for addr in addrs:
                pool = self._pool(scheme, addr, port, host)
                try:
                    return pool.urlopen("GET", target, headers=headers, redirect=False, retries=False,
                                        preload_content=False, assert_same_host=False)
                except urllib3.exceptions.NewConnectionError as e:
                    last = e
                    continue
                except (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError):
                    raise _Transient(f"{uri}: timed out (connect {self.policy.connect_timeout_s}s, "
                                     f"read {self.policy.read_timeout_s}s)") from None
                except urllib3.exceptions.SSLError as e:
                    raise FetchError(f"{uri}: TLS error ({e})") from None
                except (urllib3.exceptions.ProtocolError, urllib3.exceptions.HTTPError) as e:
                    raise _Transient(f"{uri}: connection failed ({type(e).__name__})") from None
        raise _Transient(f"{uri}: cannot connect to {host}:{port} ({type(last).__name__ if last else 'no address'})")

    def _pool(self, scheme: str, addr: str, port: int, host: str) -> urllib3.connectionpool.HTTPConnectionPool:
        key = (scheme, addr, port, host)
        with self._lock:
            if key not in self._pools:
                timeout = urllib3.Timeout(connect=self.policy.connect_timeout_s, read=self.policy.read_timeout_s)
                n = self.policy.per_host_connections
                if scheme == "https":
                    self._pools[key] = urllib3.HTTPSConnectionPool(
                        addr, port, timeout=timeout, maxsize=n, retries=False, cert_reqs="CERT_REQUIRED",
                        ca_certs=self.policy.ca_bundle or certifi.where(), server_hostname=host, assert_hostname=host,
                    )
                else:
                    self._pools[key] = urllib3.HTTPConnectionPool(addr, port, timeout=timeout, maxsize=n, retries=False)
            return self._pools[key]

    # -- checks ---------------------------------------------------------------------------------------
    def _check_size(self, uri: str, size: int) -> None:
        if size > self.policy.max_bytes:
            self._count("refused")
            raise FetchRefused(f"{uri}: {size} bytes is over the fetch policy's max_bytes ({self.policy.max_bytes})")

    def _check_magic(self, uri: str, data: bytes) -> None:
        if sniff(data) is None:
            raise FetchRefused(f"{uri}: not an image (no JPEG/PNG/WebP/TIFF/GIF/BMP signature)")

    # -- cache ----------------------------------------------------------------------------------------
    def _count(self, what: str) -> None:
        with self._lock:
            self.stats.counts[what] += 1

    def _index_file(self, uri: str) -> Path:
        return self.cache / "index" / f"{hashlib.sha256(uri.encode()).hexdigest()}.json"

    def _index_get(self, uri: str) -> dict | None:
        try:
            entry = json.loads(self._index_file(uri).read_text())
        except (FileNotFoundError, json.JSONDecodeError, OSError):
            return None
        return entry if isinstance(entry, dict) and entry.get("url") == uri else None

    def _index_put(self, uri: str, entry: dict) -> None:
        _atomic_write(self._index_file(uri), json.dumps({**entry, "url": uri}).encode())

    def _blob(self, sha: str) -> bytes | None:
        if not sha:
            return None
        try:
            data = (self.cache / "blobs" / sha).read_bytes()
        except OSError:
            return None
        return data if hashlib.sha256(data).hexdigest() == sha else None  # a damaged blob is a miss

    def _store(self, uri: str, data: bytes, meta: dict) -> None:
        sha = hashlib.sha256(data).hexdigest()
        blob = self.cache / "blobs" / sha
        try:
            if not blob.exists():  # one copy per content, however many URLs serve it
                _atomic_write(blob, data)
            self._index_put(uri, {**{k: v for k, v in meta.items() if v}, "sha256": sha, "bytes": len(data),
                                  "run_id": self.run_id, "fetched_at": time.time()})
        except OSError as e:  # a cache that cannot be written costs speed, not correctness
            log.warning("source cache %s not writable: %s", self.cache, e)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
