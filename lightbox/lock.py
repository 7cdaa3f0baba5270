"""The brand lock: runs of one brand take turns - across threads, processes, machines and Prefect servers -
and a run that dies (SIGKILL, OOM, a drained node) gives the lock up by itself when its lease runs out.

The lock lives in the output storage, beside what it protects, so everything that writes there sees it:
``<brand>/_lock/<generation>.json`` holds ``{owner, host, pid, taken_at, expires_at, released}``. The
highest generation is the current lease.

- **acquire**: read the highest generation ``g``. If there is none, or its lease expired or was released,
  create ``g + 1`` *exclusively* (local disk: ``O_CREAT | O_EXCL``; S3: ``If-None-Match: *``). Of two
  contenders exactly one creates it; the other waits. Otherwise wait, saying who holds it and since when.
- **renew**: the holder rewrites its own generation with a later ``expires_at`` every ``ttl / 3`` (a
  thread). When a higher generation exists, the lease had expired and was taken: the holder has *lost*
  the lock and must stop writing (:meth:`BrandLock.ensure_held` raises).
- **release**: the holder marks its generation released. ``lightbox unlock`` (:func:`force_unlock`) writes
  a released generation above the current one, so a holder that is in fact alive stops at its next
  renewal. Older generations are removed by the next holder.

Clocks of machines sharing a store must agree to well within the TTL (default 120 s; NTP does).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from lightbox.layout import BrandLayout
from lightbox.errors import LightboxError
from lightbox.storage import Store

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 120.0


class LockLost(LightboxError):
    """This run's lease expired and another run took the brand lock: it must not write on."""


def lock_ttl() -> float:
    """``$LIGHTBOX_LOCK_TTL_S``, else 120 s: how long a dead run can keep its brand waiting."""
    return float(os.environ.get("LIGHTBOX_LOCK_TTL_S") or DEFAULT_TTL_S)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def lock_prefix(brand: str) -> str:
    return BrandLayout(brand).lock


def _key(brand: str, generation: int) -> str:
    return f"{lock_prefix(brand)}/{generation:012d}.json"


def current(store: Store, brand: str) -> tuple[int, dict[str, Any] | None]:
    """The highest generation and its lease (0, None when the brand was never locked)."""
    names = [k.rsplit("/", 1)[-1] for k in store.list(lock_prefix(brand))]
    generations = sorted(int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit())
    for g in reversed(generations):
        try:
            return g, json.loads(store.read(_key(brand, g)))
        except FileNotFoundError:  # removed between the listing and the read: look again at the next one
            continue
        except ValueError:  # a lease being written (local disk writes atomically, so only a torn manual edit)
            return g, {"owner": "?", "expires_at": 0, "released": False}
    return (generations[-1] if generations else 0), None


def describe(lease: dict[str, Any]) -> str:
    return (f"run {lease.get('owner')} on {lease.get('host')} (pid {lease.get('pid')}) since {lease.get('taken_at_iso')}, "
            f"lease until {lease.get('expires_at_iso')}")


class BrandLock:
    """One run's hold on a brand. Use :meth:`held` (a context manager) around everything the run writes."""

    def __init__(self, store: Store, brand: str, owner: str, ttl_s: float | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self.store, self.brand, self.owner = store, brand, owner
        self.ttl = ttl_s if ttl_s is not None else lock_ttl()
        self.clock, self.sleep = clock, sleep
        self.generation: int | None = None
        self._taken_at = 0.0
        self._lost = threading.Event()
        self._stop = threading.Event()

    def _lease(self, taken_at: float, released: bool = False) -> bytes:
        now = self.clock()
        expires = now if released else now + self.ttl
        return json.dumps({"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(), "taken_at": taken_at,
                           "taken_at_iso": _iso(taken_at), "expires_at": expires, "expires_at_iso": _iso(expires),
                           "released": released}).encode()

    def try_acquire(self) -> dict[str, Any] | None:
        """Take the lock if it is free or its lease ran out; else the holder's lease (nothing taken)."""
        g, lease = current(self.store, self.brand)
        if lease is not None and not lease.get("released") and lease.get("expires_at", 0) > self.clock():
            return lease
        self._taken_at = self.clock()
        if not self.store.create_exclusive(_key(self.brand, g + 1), self._lease(self._taken_at)):
            _, lease = current(self.store, self.brand)  # someone else won generation g + 1
            return lease or {"owner": "?"}
        self.generation = g + 1
        if lease is not None and not lease.get("released"):
            log.warning("brand %s: took over the lock of %s, whose lease ran out (it died or hung)", self.brand, describe(lease))
        for old in range(max(1, g - 8), g + 1):  # keep the previous lease for the record, drop older ones
            if old < g:
                self.store.delete(_key(self.brand, old))
        return None

    def acquire(self, timeout_s: float | None = None, on_wait: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Wait until the lock is ours (bounded by ``timeout_s`` when given)."""
        deadline = None if timeout_s is None else self.clock() + timeout_s
        told = None
        while True:
            holder = self.try_acquire()
            if holder is None:
                return
            if holder.get("owner") != told:
                told = holder.get("owner")
                (on_wait or (lambda h: log.warning("brand %s: waiting for the lock held by %s", self.brand, describe(h))))(holder)
            if deadline is not None and self.clock() >= deadline:
                raise LightboxError(f"brand {self.brand}: lock still held by {describe(holder)} after {timeout_s:.0f} s")
            self.sleep(min(5.0, max(0.2, self.ttl / 10)))

    def renew(self) -> bool:
        """Extend the lease; False (and :attr:`lost`) when a later generation exists."""
        if self.generation is None:
            return False
        g, _ = current(self.store, self.brand)
        if g != self.generation:
            self._lost.set()
            return False
        self.store.write_atomic(_key(self.brand, self.generation), self._lease(self._taken_at))
        return True

    def release(self) -> None:
        if self.generation is None:
            return
        g, _ = current(self.store, self.brand)
        if g == self.generation:  # never overwrite a lease someone else took
            self.store.write_atomic(_key(self.brand, self.generation), self._lease(self._taken_at, released=True))
        self.generation = None

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def ensure_held(self) -> None:
        """Raise before a write that only the holder may make (the manifest export)."""
        if self.lost or not self.renew():
            raise LockLost(f"brand {self.brand}: this run's lock lease ran out and another run took the brand; "
                           "stopping before writing the manifest export")

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                if not self.renew():
                    log.error("brand %s: lost the lock (lease taken by a later run)", self.brand)
                    return
            except Exception as e:  # a storage hiccup: try again at the next beat, the TTL has room
                log.warning("brand %s: could not renew the lock lease: %s", self.brand, e)

    @contextmanager
    def held(self, timeout_s: float | None = None, on_wait: Callable[[dict[str, Any]], None] | None = None) -> Iterator[BrandLock]:
        """Acquire, renew in a background thread while the block runs, release at the end (also on errors)."""
        self.acquire(timeout_s, on_wait)
        beat = threading.Thread(target=self._heartbeat, name=f"lock-{self.brand}", daemon=True)
        beat.start()
        try:
            yield self
        finally:
            self._stop.set()
            beat.join(timeout=10)
            self.release()


def release_held_here(store: Store, brand: str) -> bool:
    """Hand back the brand's lease if this process holds it (a run stopped by Ctrl-C, which ends the process at
    once): its lease is marked released, as :meth:`BrandLock.release` does. Never touches a lease of another
    process or host, nor one taken over since. True when a lease was released."""
    g, lease = current(store, brand)
    if (lease is None or lease.get("released") or lease.get("host") != socket.gethostname()
            or lease.get("pid") != os.getpid()):
        return False
    now = time.time()
    store.write_atomic(_key(brand, g), json.dumps({**lease, "expires_at": now, "expires_at_iso": _iso(now),
                                                   "released": True, "released_by": "interrupted"}).encode())
    return True


def superseded(store: Store, brand: str, generation: int) -> bool:
    """Whether the lease ``generation`` was taken over or force-released (a later generation exists): one
    check of one key. The fence before every publish of a run that may have hung past its lease."""
    return store.exists(_key(brand, generation + 1))


def force_unlock(store: Store, brand: str, by: str = "operator") -> dict[str, Any] | None:
    """Release the current lease for an operator (``lightbox unlock``): a released generation is written
    above it, so a holder that is still alive finds its lease superseded at its next renewal and stops.
    Returns the lease that was released (None when the brand was not locked)."""
    g, lease = current(store, brand)
    if lease is None or lease.get("released") or lease.get("released_by"):
        return None
    now = time.time()
    tombstone = {"owner": by, "host": socket.gethostname(), "pid": os.getpid(), "taken_at": now, "taken_at_iso": _iso(now),
                 "expires_at": now, "expires_at_iso": _iso(now), "released": True, "released_by": by,
                 "released_lease": lease}
    if not store.create_exclusive(_key(brand, g + 1), json.dumps(tombstone).encode()):
        return force_unlock(store, brand, by)  # the lease changed hands meanwhile: release the new one
    return lease
