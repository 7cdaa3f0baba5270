"""Job API: submit catalog jobs, follow them, announce catalog changes.

- ``POST /v1/jobs``: a product list or a catalog URI + parameters -> validated with the catalog schema
  (pandera ``CatalogFrame`` under the brand spec) -> a run of the ``on-demand`` deployment on the work
  queue of the request's priority -> ``202 {"job_id": <flow run id>}``. An ``Idempotency-Key`` header
  makes a retried POST return the same job instead of starting a second run.
- ``GET /v1/jobs/{id}``: the run's state, counts and published URIs (from the run's summary).
- ``POST /v1/catalog-events``: emits the Prefect event ``lightbox.catalog.updated``; the
  ``catalog-update`` deployment's trigger turns it into a run limited to the named SKUs.
- ``GET /healthz`` (no key), ``GET /openapi.json`` and ``/docs``.

Every ``/v1`` call needs an API key (``Authorization: Bearer <key>`` or ``X-API-Key``), checked against
hashes (:mod:`api.keys`). Bodies over ``LIGHTBOX_API_MAX_BODY`` bytes are refused with 413 before they
are parsed. Start it with ``lightbox api``.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.keys import KeyStore
from lightbox.config import api_keys_file
from lightbox.catalog.ingest import normalise
from lightbox.catalog.validate import structural_errors
from lightbox.errors import LightboxError
from lightbox.report import job_key
from lightbox.specs import load_brand_spec
from lightbox.storage import Store, join_uri

EVENT = "lightbox.catalog.updated"
QUEUES = {"urgent": "urgent", "normal": "default", "low": "nightly"}
RESERVED = {"sku", "title", "category", "images", "image", "priority", "hero", "row"}


@dataclass
class Settings:
    """From the environment (``LIGHTBOX_API_*``); see docs/operations.md."""

    keys_file: str = field(default_factory=api_keys_file)
    out: str = "out"
    brands_dir: str = "brand_specs"
    incoming: str | None = None  # where posted product lists are written; default <out>/_incoming
    catalog_prefixes: list[str] = field(default_factory=lambda: ["s3://"])
    default_catalog: str | None = None
    deployment: str = "catalog-run/on-demand"
    max_body: int = 1_000_000
    max_products: int = 5000

    @classmethod
    def from_env(cls) -> Settings:
        e = os.environ.get
        return cls(
            keys_file=api_keys_file(), out=e("LIGHTBOX_API_OUT", "out"),
            brands_dir=e("LIGHTBOX_API_BRANDS_DIR", "brand_specs"), incoming=e("LIGHTBOX_API_INCOMING") or None,
            catalog_prefixes=[p for p in e("LIGHTBOX_API_CATALOG_PREFIXES", "s3://").split(",") if p],
            default_catalog=e("LIGHTBOX_DEFAULT_CATALOG") or None,
            deployment=e("LIGHTBOX_API_DEPLOYMENT", "catalog-run/on-demand"),
            max_body=int(e("LIGHTBOX_API_MAX_BODY", "1000000")), max_products=int(e("LIGHTBOX_API_MAX_PRODUCTS", "5000")),
        )

    @property
    def incoming_uri(self) -> str:
        return self.incoming or join_uri(self.out, "_incoming")


# --- request and response bodies -----------------------------------------------------------------------
Brand = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="brand spec name in brand_specs/")]
Sku = Annotated[str, Field(min_length=1, max_length=64)]


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    title: str = Field(min_length=1, max_length=500)
    category: str = Field(min_length=1)
    images: list[str] = Field(default_factory=list, max_length=20, description="absolute URLs or s3:// URIs")
    attributes: dict[str, str] = Field(default_factory=dict)
    priority: int = Field(0, ge=0, le=9999)
    hero: bool = False

    @field_validator("images")
    @classmethod
    def _absolute(cls, v: list[str]) -> list[str]:
        for ref in v:
            if "://" not in ref:
                raise ValueError(f"{ref!r} is not an absolute URL (https://... or s3://...)")
        return v

    @field_validator("attributes")
    @classmethod
    def _names(cls, v: dict[str, str]) -> dict[str, str]:
        clash = sorted(set(map(str.lower, v)) & RESERVED)
        if clash:
            raise ValueError(f"attribute names {clash} are product fields, not attributes")
        return v


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    brand: Brand
    catalog: str | None = Field(None, description="catalog URI (one of catalog / products)")
    products: list[ProductIn] | None = Field(None, min_length=1, description="products to render (one of catalog / products)")
    skus: list[Sku] | None = Field(None, min_length=1, max_length=10000, description="limit a catalog run to these SKUs")
    priority: Literal["urgent", "normal", "low"] = "normal"
    layout: Literal["lightbox", "shopify", "woocommerce", "google-merchant"] | None = None
    chunk_size: int = Field(8, ge=1, le=256)

    @model_validator(mode="after")
    def _one_source(self) -> JobRequest:
        if (self.catalog is None) == (self.products is None):
            raise ValueError("give exactly one of 'catalog' and 'products'")
        return self


class JobAccepted(BaseModel):
    job_id: str
    status_url: str
    state: str
    work_queue: str
    catalog: str


class JobStatus(BaseModel):
    job_id: str
    state: str
    state_name: str
    message: str | None = None
    brand: str | None = None
    catalog: str | None = None
    priority: str | None = None
    created: str | None = None
    started: str | None = None
    ended: str | None = None
    counts: dict[str, Any] | None = None
    published: list[dict[str, Any]] = Field(default_factory=list)
    unknown_skus: list[str] = Field(default_factory=list)
    summary_uri: str | None = None
    review_uri: str | None = None


class CatalogEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    brand: Brand
    skus: list[Sku] | None = Field(None, min_length=1, max_length=10000, description="the changed SKUs")
    catalog: str | None = Field(None, description="catalog URI (default: the service's LIGHTBOX_DEFAULT_CATALOG)")

    @model_validator(mode="after")
    def _something(self) -> CatalogEvent:
        if self.skus is None and self.catalog is None:
            raise ValueError("name the changed 'skus', a 'catalog', or both")
        return self


class EventAccepted(BaseModel):
    event_id: str
    event: str
    skus: int | None
    catalog: str


# --- the app --------------------------------------------------------------------------------------------
def _unprocessable(loc: list, msg: str) -> HTTPException:
    return HTTPException(422, detail=[{"loc": loc, "msg": msg, "type": "value_error"}])


class BodyLimit:
    """ASGI middleware: 413 for a body over ``limit`` bytes, by Content-Length or while streaming."""

    def __init__(self, app, limit: int):  # noqa: ANN001 - ASGI app
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):  # noqa: ANN001, ANN204 - ASGI signature
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._too_large(send)
        # read the body here, bounded, then hand it on: the app never sees more than the limit
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, receive, send)  # a disconnect: let the app see it
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.limit:
                return await self._too_large(send)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():  # noqa: ANN202
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _too_large(self, send) -> None:  # noqa: ANN001
        body = json.dumps({"detail": f"request body is over {self.limit} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    keys = KeyStore(settings.keys_file)
    app = FastAPI(title="Lightbox job API", version="1", description=__doc__)
    app.add_middleware(BodyLimit, limit=settings.max_body)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    def api_key(authorization: str | None = Header(None), x_api_key: str | None = Header(None)) -> str:
        presented = x_api_key
        if authorization and authorization.lower().startswith("bearer "):
            presented = authorization[7:].strip()
        name = keys.check(presented)
        if name is None:
            raise HTTPException(401, detail="missing or invalid API key", headers={"WWW-Authenticate": "Bearer"})
        return name

    def brand_spec_path(brand: str, loc: list) -> str:
        path = Path(settings.brands_dir) / f"{brand}.yaml"
        if not path.is_file():
            raise _unprocessable(loc, f"unknown brand {brand!r} (no {path})")
        return str(path)

    def check_catalog(uri: str, loc: list) -> str:
        allowed = [settings.incoming_uri, *settings.catalog_prefixes]
        probe = uri if "://" in uri else os.path.realpath(uri)
        roots = [p if "://" in p else os.path.realpath(p) for p in allowed]
        if not any(probe == r or probe.startswith(r.rstrip("/") + "/") or (r.endswith("://") and probe.startswith(r))
                   for r in roots):
            raise _unprocessable(loc, f"catalog {uri!r} is outside the allowed locations ({', '.join(allowed)})")
        return uri

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"ok": True}

    @app.post("/v1/jobs", status_code=202, response_model=JobAccepted)
    async def submit_job(body: JobRequest, who: str = Depends(api_key),
                         idempotency_key: str | None = Header(None, max_length=200)) -> JobAccepted:
        from prefect.deployments import run_deployment

        spec_path = brand_spec_path(body.brand, ["body", "brand"])
        if body.products is not None:
            if len(body.products) > settings.max_products:
                raise _unprocessable(["body", "products"], f"at most {settings.max_products} products per job")
            catalog = _write_products(body.products, spec_path, settings)
        else:
            catalog = check_catalog(body.catalog or "", ["body", "catalog"])
        queue = QUEUES[body.priority]
        params = {"catalog": catalog, "brand": spec_path, "out": settings.out, "chunk_size": body.chunk_size,
                  "layout": body.layout, "skus": body.skus}
        run = await run_deployment(
            settings.deployment, parameters=params, timeout=0, work_queue_name=queue, as_subflow=False,
            tags=["lightbox", "api", f"priority:{body.priority}", f"brand:{body.brand}", f"key:{who}"],
            idempotency_key=f"{who}:{idempotency_key}" if idempotency_key else None,
        )
        return JobAccepted(job_id=str(run.id), status_url=f"/v1/jobs/{run.id}", state=run.state.type.value if run.state else "SCHEDULED",
                           work_queue=queue, catalog=catalog)

    @app.get("/v1/jobs/{job_id}", response_model=JobStatus)
    async def job_status(job_id: uuid.UUID, who: str = Depends(api_key)) -> JobStatus:
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        async with get_client() as client:
            try:
                run = await client.read_flow_run(job_id)
            except ObjectNotFound:
                raise HTTPException(404, detail=f"no job {job_id}") from None
        if "lightbox" not in (run.tags or []):
            raise HTTPException(404, detail=f"no job {job_id}")
        p = run.parameters or {}
        status = JobStatus(
            job_id=str(run.id), state=run.state.type.value if run.state else "UNKNOWN",
            state_name=run.state.name if run.state else "Unknown", message=run.state.message if run.state else None,
            brand=next((t.split(":", 1)[1] for t in run.tags if t.startswith("brand:")), None), catalog=p.get("catalog"),
            priority=next((t.split(":", 1)[1] for t in run.tags if t.startswith("priority:")), None),
            created=run.created.isoformat() if run.created else None,
            started=run.start_time.isoformat() if run.start_time else None,
            ended=run.end_time.isoformat() if run.end_time else None,
        )
        summary = _read_summary(p.get("out") or settings.out, str(run.id))
        if summary:
            status.counts = {k: summary.get(k) for k in ("ingested", "invalid", "skipped", "products", "generated",
                                                          "unchanged", "passed", "warned", "failed", "render_failed", "qc_failed",
                                                          "published", "to_review")}
            status.published = summary.get("published_images", [])
            status.unknown_skus = summary.get("unknown_skus", [])
            status.summary_uri, status.review_uri = summary.get("summary_uri"), summary.get("review_uri")
        return status

    @app.post("/v1/catalog-events", status_code=202, response_model=EventAccepted)
    def catalog_event(body: CatalogEvent, who: str = Depends(api_key)) -> EventAccepted:
        from prefect.events import emit_event

        spec_path = brand_spec_path(body.brand, ["body", "brand"])
        catalog = body.catalog or settings.default_catalog
        if not catalog:
            raise _unprocessable(["body", "catalog"], "no catalog named and no LIGHTBOX_DEFAULT_CATALOG configured")
        check_catalog(catalog, ["body", "catalog"])
        ev = emit_event(
            event=EVENT,
            resource={"prefect.resource.id": f"lightbox.catalog.{body.brand}", "prefect.resource.name": body.brand},
            related=[{"prefect.resource.id": f"lightbox.api-key.{who}", "prefect.resource.role": "requester"}],
            payload={"brand": body.brand, "brand_spec": spec_path, "catalog": catalog, "out": settings.out,
                     "skus": body.skus},
        )
        if ev is None:
            raise HTTPException(503, detail="events are not reaching Prefect (is PREFECT_API_URL set?)")
        return EventAccepted(event_id=str(ev.id), event=EVENT, skus=len(body.skus) if body.skus else None, catalog=catalog)

    return app


def _write_products(products: list[ProductIn], spec_path: str, settings: Settings) -> str:
    """Validate like ingest does (pandera, under the brand spec), then write JSON Lines for the run."""
    rows = [{"sku": p.sku, "title": p.title, "category": p.category, "images": "|".join(p.images),
             "priority": str(p.priority), "hero": "true" if p.hero else "false", **p.attributes} for p in products]
    frame = normalise(pd.DataFrame(rows, dtype=object).fillna(""), "api")
    try:
        spec = load_brand_spec(spec_path)
        errors = structural_errors(frame, spec)
    except LightboxError as e:
        raise _unprocessable(["body", "products"], str(e)) from None
    if errors:
        detail = []
        for idx, reasons in sorted(errors.items()):
            for column, reason in reasons:
                field_name = {"images": "images"}.get(column, column) or "products"
                detail.append({"loc": ["body", "products", idx, field_name], "msg": reason, "type": "value_error"})
        raise HTTPException(422, detail=detail)
    store = Store(settings.incoming_uri)
    key = f"{uuid.uuid4().hex}.jsonl"
    lines = [json.dumps({"sku": p.sku, "title": p.title, "category": p.category, "images": p.images,
                         "priority": p.priority, "hero": p.hero, "attributes": p.attributes}) for p in products]
    store.write_atomic(key, ("\n".join(lines) + "\n").encode())
    return store.uri(key)


def _read_summary(out: str, flow_run_id: str) -> dict | None:
    try:
        return json.loads(Store(out).read(job_key(flow_run_id)))
    except (FileNotFoundError, LightboxError, OSError, ValueError):
        return None

