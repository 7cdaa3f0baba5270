"""A TCP proxy on loopback that a test can take down and bring back: a real storage outage."""

from __future__ import annotations

import socket
import threading
import time


class FlakyProxy:
    """A TCP forwarder to ``target``; :meth:`down` closes the listener and every open connection (clients
    then get 'connection refused'), :meth:`up` listens again on the same port."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        self._listener = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def down(self) -> None:
        srv, self._listener = self._listener, None
        if srv:
            try:
                srv.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept(); close() alone may not
            except OSError:
                pass
            srv.close()
        with self._lock:
            for c in self._conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self._conns.clear()

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass


class OutageWhenPublishing:
    """Takes ``proxy`` down for ``seconds`` once the first live image of the brand lands in ``bucket`` under
    ``prefix`` (watched on moto directly, not through the proxy), then brings it back. Records whether the
    endpoint really refused connections and when the outage started and ended."""

    def __init__(self, proxy: FlakyProxy, s3_endpoint: str, bucket: str, prefix: str, seconds: float) -> None:
        import boto3

        self.proxy, self.bucket, self.prefix, self.seconds = proxy, bucket, prefix, seconds
        self.direct = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
        self.refused = False
        self.start = self.end = 0.0
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            keys = [o["Key"] for o in self.direct.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix).get("Contents", [])]
            if any(k.endswith("/amazon_main.jpg") and "/_" not in k for k in keys):
                self.proxy.down()
                self.start = time.monotonic()
                try:  # the outage is real: nothing answers on the endpoint's port
                    socket.create_connection(("127.0.0.1", self.proxy.port), timeout=2).close()
                except OSError:
                    self.refused = True
                time.sleep(self.seconds)
                self.proxy.up()
                self.end = time.monotonic()
                return
            time.sleep(0.05)

    def done(self, timeout: float = 60) -> bool:
        """Whether a real outage of the full length happened (waits for the watcher)."""
        self.thread.join(timeout=timeout)
        return self.refused and self.end - self.start >= self.seconds
