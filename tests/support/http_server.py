"""A real HTTP server on 127.0.0.1 for fetch tests: routes with bodies, types, validators, delays,
redirects and failure sequences, and a log of every request it answered (headers, status, bytes sent)."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "image/jpeg"
    etag: bool = True  # send a strong ETag and answer If-None-Match with 304
    last_modified: bool = False  # send Last-Modified and answer If-Modified-Since with 304
    delay_s: float = 0.0  # before the status line (a slow server)
    location: str | None = None  # answer 302 to this URL
    statuses: list[int] = field(default_factory=list)  # answered first, in order (e.g. [503] then the body)
    chunked: bool = False  # no Content-Length: the body arrives as a stream


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    status: int  # 0 while the answer is being prepared
    body_bytes: int
    answered: bool = False  # its answer is about to go out: no longer counted in flight


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client that stopped reading on purpose (size limits, timeouts): not an error here
        super().handle_error(request, client_address)


class _Serving:
    """Start/stop for a ThreadingHTTPServer on 127.0.0.1 held in ``self.httpd``."""

    httpd: ThreadingHTTPServer

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class ImageServer(_Serving):
    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        """``tls``: (certificate, key) PEM files: serve HTTPS instead of HTTP."""
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._last_modified = formatdate(time.time() - 3600, usegmt=True)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:  # http.server's naming
                seen = Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, 0, 0)
                with server._lock:
                    server.seen.append(seen)  # recorded before answering: a client may act on the answer at once
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    seen.status, seen.body_bytes = server._answer(self, seen)
                finally:
                    server._answering(seen)

        self._serve(Handler)
        self.scheme = "http"
        if tls:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def add(self, path: str, **kw) -> str:
        self.routes[path] = Route(**kw)
        return self.url(path)

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    def _answering(self, seen: Seen) -> None:
        """The request stops counting as in flight: a plain body's just before it goes out, since the
        client may send its next request the moment it has it (counted after, a thread the machine is
        slow to run again would overlap the next one: seen as 3 in flight under a limit of 2); other
        answers when the handler returns."""
        with self._lock:
            if not seen.answered:
                seen.answered = True
                self.in_flight -= 1

    def _answer(self, h: BaseHTTPRequestHandler, seen: Seen) -> tuple[int, int]:
        """Send the route's answer; ``seen.status`` is set before the body goes out."""
        route = self.routes.get(h.path)
        if route is None:
            seen.status = 404
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return 404, 0
        if route.delay_s:
            time.sleep(route.delay_s)
        if route.statuses:
            status = seen.status = route.statuses.pop(0)
            h.send_response(status)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return status, 0
        if route.location:
            seen.status = 302
            h.send_response(302)
            h.send_header("Location", route.location)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return 302, 0
        etag = '"' + hashlib.sha256(route.body).hexdigest()[:16] + '"'
        if (route.etag and h.headers.get("If-None-Match") == etag) or (
            route.last_modified and h.headers.get("If-Modified-Since") == self._last_modified
        ):
            seen.status = 304
            h.send_response(304)
            h.end_headers()
            return 304, 0
        seen.status = 200
        h.send_response(200)
        h.send_header("Content-Type", route.content_type)
        if route.etag:
            h.send_header("ETag", etag)
        if route.last_modified:
            h.send_header("Last-Modified", self._last_modified)
        if route.chunked:
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            sent = 0
            try:
                for i in range(0, len(route.body), 65536):
                    part = route.body[i : i + 65536]
                    h.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    sent += len(part)
                h.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading (a size limit): what was sent is recorded
            return 200, sent
        h.send_header("Content-Length", str(len(route.body)))
        h.end_headers()
        self._answering(seen)
        try:
            h.wfile.write(route.body)
        except (BrokenPipeError, ConnectionResetError):
            return 200, 0
        return 200, len(route.body)


class WebhookReceiver(_Serving):
    """Records every POST (raw body and headers); answers with ``statuses`` first (e.g. [500]), then 200."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._serve(Handler)
        self.url = f"http://127.0.0.1:{self.port}/hook"


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a receiver that is down)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def make_tls_files(directory, names: tuple[str, ...] = ("localhost", "127.0.0.1")) -> tuple[str, str, str]:
    """A throwaway CA and a server certificate for ``names`` (host names or IPs) signed by it:
    (ca.pem, server.pem, server.key) in ``directory``. Nothing leaves the test's folder."""
    import datetime as dt
    import ipaddress
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def _san(name: str) -> x509.GeneralName:
        try:
            return x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            return x509.DNSName(name)

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lightbox test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = d / "ca.pem", d / "server.pem", d / "server.key"
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return tuple(str(f) for f in files)
