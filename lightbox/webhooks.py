"""Downstream webhooks: signed JSON POSTs to the subscribers in config, retried, never blocking.

Config (YAML, ``$LIGHTBOX_WEBHOOKS`` or the flow's ``webhooks`` parameter)::

    subscribers:
      - name: pim
        url: https://pim.example.com/hooks/lightbox
        secret_env: PIM_WEBHOOK_SECRET      # the HMAC key comes from the environment, never the file
        events: [image.published, run.completed]
    timeout_s: 5
    retries: 3
    backoff_s: 1.0

Events:

- ``image.published``: one per product whose images were written this run (never for unchanged ones,
  so a rerun sends nothing): ``{"sku", "images": [{"channel", "uri", "sha256", "qc"}, ...]}``;
- ``run.completed``: once per run: counts, manifest and report URIs, final quality state.

Every delivery is ``{"id", "type", "created", "run_id", "brand", "data"}``; ``id`` is stable for the
same content (sha256 of type, brand and data), so a receiver can drop the duplicate a retry may cause.
Signature header ``Lightbox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``:
receivers recompute it over the raw body and reject stale timestamps (:func:`verify`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import urllib3
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from lightbox.config import load_yaml_model

log = logging.getLogger(__name__)

EventType = Literal["image.published", "run.completed"]
SIGNATURE_HEADER = "Lightbox-Signature"


class Subscriber(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    url: HttpUrl
    secret_env: str = Field(min_length=1, description="environment variable holding the HMAC secret")
    events: list[EventType] = Field(default_factory=lambda: ["image.published", "run.completed"])


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subscribers: list[Subscriber] = Field(default_factory=list)
    timeout_s: float = Field(5.0, gt=0)
    retries: int = Field(3, ge=0)
    backoff_s: float = Field(1.0, ge=0)
    max_workers: int = Field(4, ge=1)


def load_webhooks(uri: str | None) -> WebhookConfig:
    """Subscribers from YAML; none when ``uri`` is None."""
    return load_yaml_model(uri, WebhookConfig)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, body: bytes, header: str, tolerance_s: int = 300, now: float | None = None) -> bool:
    """What a receiver does: parse the header, recompute, compare in constant time, reject stale."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        ts = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((now or time.time()) - ts) > tolerance_s:
        return False
    expected = sign(secret, body, ts).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def event(kind: EventType, brand: str, run_id: str, data: dict[str, Any]) -> dict[str, Any]:
    canonical = json.dumps({"type": kind, "brand": brand, "data": data}, sort_keys=True, separators=(",", ":"))
    return {"id": hashlib.sha256(canonical.encode()).hexdigest()[:32], "type": kind, "created": int(time.time()),
            "run_id": run_id, "brand": brand, "data": data}


class Delivery(BaseModel):
    """One event to one subscriber, as it ended."""

    subscriber: str
    event_id: str
    type: str
    sku: str | None = None
    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None


class Notifier:
    """Delivers events to every subscriber that wants them; failures are returned, never raised."""

    def __init__(self, config: WebhookConfig, sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self._sleep = sleep
        self._http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=config.timeout_s))

    def deliver_all(self, events: list[dict[str, Any]]) -> list[Delivery]:
        jobs = [(s, e) for e in events for s in self.config.subscribers if e["type"] in s.events]
        if not jobs:
            return []
        with ThreadPoolExecutor(max_workers=min(self.config.max_workers, len(jobs))) as pool:
            return list(pool.map(lambda job: self.deliver(*job), jobs))

    def deliver(self, sub: Subscriber, ev: dict[str, Any]) -> Delivery:
        sku = ev["data"].get("sku")
        secret = os.environ.get(sub.secret_env)
        if not secret:
            return Delivery(subscriber=sub.name, event_id=ev["id"], type=ev["type"], sku=sku, ok=False, attempts=0,
                            error=f"secret variable {sub.secret_env} is not set")
        body = json.dumps(ev, separators=(",", ":")).encode()
        status, error = None, None
        for attempt in range(1, self.config.retries + 2):
            headers = {"Content-Type": "application/json", "User-Agent": "lightbox-webhooks/0.1",
                       SIGNATURE_HEADER: sign(secret, body, int(time.time())), "Lightbox-Event-Id": ev["id"],
                       "Lightbox-Event-Type": ev["type"]}
            try:
                resp = self._http.request("POST", str(sub.url), body=body, headers=headers, redirect=False)
                status, error = resp.status, None
                if 200 <= resp.status < 300:
                    return Delivery(subscriber=sub.name, event_id=ev["id"], type=ev["type"], sku=sku, ok=True,
                                    attempts=attempt, status=status)
                error = f"HTTP {resp.status}"
                if resp.status < 500 and resp.status not in (408, 429):
                    break  # the receiver refused this event: another try would be refused too
            except urllib3.exceptions.HTTPError as e:
                status, error = None, f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            if attempt <= self.config.retries:
                self._sleep(self.config.backoff_s * 2 ** (attempt - 1))
        log.warning("webhook %s to %s failed after %d attempts: %s", ev["type"], sub.name, attempt, error)
        return Delivery(subscriber=sub.name, event_id=ev["id"], type=ev["type"], sku=sku, ok=False, attempts=attempt,
                        status=status, error=error)


def product_events(outputs: list, brand: str, run_id: str) -> list[dict[str, Any]]:
    """One ``image.published`` event per SKU with images written in this run (``Output`` records)."""
    by_sku: dict[str, list] = {}
    for o in outputs:
        if o.state == "live":
            by_sku.setdefault(o.sku, []).append(o)
    return [
        event("image.published", brand, run_id, {
            "sku": sku,
            "images": [{"channel": o.name, "uri": o.uri, "sha256": o.sha256, "qc": o.qc, "width": o.width,
                        "height": o.height, "ai_generated": o.ai_generated, "photo": o.photo, "role": o.role}
                       for o in sorted(outs, key=lambda o: (o.channel, o.photo, o.variant))],
        })
        for sku, outs in sorted(by_sku.items())
    ]
