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

import asyncio
import hashlib
import json
import os
import posixpath
import time
import uuid
from urllib.parse import unquote
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import pandas as pd
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.keys import KeyStore
from lightbox.config import api_keys_file
from lightbox.catalog.ingest import normalise
from lightbox.catalog.validate import structural_errors
from lightbox.errors import LightboxError
from lightbox.fetch import refusal
from lightbox.fetch_policy import load_fetch_policy
from lightbox.report import job_key
from lightbox.specs import load_brand_spec
from lightbox.storage import Store, join_uri, parse_output_root

EVENT = "lightbox.catalog.updated"
QUEUES = {"urgent": "urgent", "normal": "default", "low": "nightly"}
RESERVED = {"sku", "title", "category", "images", "image", "priority", "hero", "row"}


# --- limits: in the schema, enforced by parsing before any other work -------------------------------------
MAX_PRODUCTS = 5000          # products per job
MAX_ATTRIBUTES = 100         # attributes per product
MAX_ATTRIBUTE_NAMES = 200    # distinct attribute names per job (columns of the validated frame)
MAX_VALUE = 1000             # characters per attribute value
MAX_IMAGES = 20              # images per product
MAX_URI = 2048               # characters per URI
RETRY_AFTER_S = 30           # what a client is told to wait while the scheduler (Prefect) is unreachable
HEALTH_TTL_S = 5.0           # /healthz asks Prefect at most this often
UNAVAILABLE = {"description": "the scheduler (Prefect) is unreachable or too slow: retry after the Retry-After header's seconds"}

@dataclass
class Settings:
    """From the environment (``LIGHTBOX_API_*``); see docs/operations.md."""

    keys_file: str = field(default_factory=api_keys_file)
    out: str = "out"
    brands_dir: str = "brand_specs"
    incoming: str | None = None  # where posted product lists are written; default <out>/_incoming
    catalog_prefixes: list[str] = field(default_factory=list)  # none until configured
    local_prefixes: list[str] = field(default_factory=list)  # local folders jobs' photos may come from; none by default
    default_catalog: str | None = None
    deployment: str = "catalog-run/on-demand"
    max_body: int = 1_000_000
    max_products: int = MAX_PRODUCTS
    prefect_timeout_s: float = 30.0  # longest wait for Prefect to take a job; then 503 and Retry-After

    def __post_init__(self) -> None:
        """The output roots are the service's own (no request names one): a bad one stops it at start-up."""
        self.out = parse_output_root(self.out, "LIGHTBOX_API_OUT")
        if self.incoming is not None:
            self.incoming = parse_output_root(self.incoming, "LIGHTBOX_API_INCOMING")

    @classmethod
    def from_env(cls) -> Settings:
        e = os.environ.get
        return cls(
            keys_file=api_keys_file(), out=e("LIGHTBOX_API_OUT", "out"),
            brands_dir=e("LIGHTBOX_API_BRANDS_DIR", "brand_specs"), incoming=e("LIGHTBOX_API_INCOMING") or None,
            catalog_prefixes=[p for p in e("LIGHTBOX_API_CATALOG_PREFIXES", "").split(",") if p],
            local_prefixes=[p for p in e("LIGHTBOX_API_LOCAL_PREFIXES", "").split(",") if p],
            default_catalog=e("LIGHTBOX_DEFAULT_CATALOG") or None,
            deployment=e("LIGHTBOX_API_DEPLOYMENT", "catalog-run/on-demand"),
            max_body=int(e("LIGHTBOX_API_MAX_BODY", "1000000")),
            max_products=min(MAX_PRODUCTS, int(e("LIGHTBOX_API_MAX_PRODUCTS", str(MAX_PRODUCTS)))),
            prefect_timeout_s=float(e("LIGHTBOX_API_PREFECT_TIMEOUT_S", "30")),
        )

    @property
    def incoming_uri(self) -> str:
        return self.incoming or join_uri(self.out, "_incoming")


# --- request and response bodies -----------------------------------------------------------------------
Brand = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="brand spec name in brand_specs/")]
Sku = Annotated[str, Field(min_length=1, max_length=64)]
Uri = Annotated[str, Field(min_length=1, max_length=MAX_URI)]
AttributeName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]
AttributeValue = Annotated[str, Field(max_length=MAX_VALUE)]


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    title: str = Field(min_length=1, max_length=500)
    category: str = Field(min_length=1, max_length=200)
    images: list[Uri] = Field(default_factory=list, max_length=MAX_IMAGES,
                              description="absolute https:// or s3:// URIs (file:// only inside LIGHTBOX_API_LOCAL_PREFIXES)")
    attributes: dict[AttributeName, AttributeValue] = Field(default_factory=dict, max_length=MAX_ATTRIBUTES)
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
    catalog: Uri | None = Field(None, description="catalog URI under LIGHTBOX_API_CATALOG_PREFIXES (one of catalog / products)")
    products: list[ProductIn] | None = Field(None, min_length=1, max_length=MAX_PRODUCTS,
                                             description="products to render (one of catalog / products)")
    skus: list[Sku] | None = Field(None, min_length=1, max_length=10000, description="limit a catalog run to these SKUs")
    priority: Literal["urgent", "normal", "low"] = "normal"
    layout: Literal["lightbox", "shopify", "woocommerce", "google-merchant"] | None = None
    chunk_size: int = Field(8, ge=1, le=256)
    retire_missing: bool = Field(False, description="take down the live images of products the catalog no longer has "
                                                    "(with 'skus': of those SKUs); only with 'catalog'")

    @model_validator(mode="after")
    def _one_source(self) -> JobRequest:
        if (self.catalog is None) == (self.products is None):
            raise ValueError("give exactly one of 'catalog' and 'products'")
        if self.retire_missing and self.products is not None:
            raise ValueError("'retire_missing' needs a 'catalog': a product list is not the whole catalog, and every "
                             "product not in it would be taken down")
        names = {n.lower() for p in self.products or [] for n in p.attributes}
        if len(names) > MAX_ATTRIBUTE_NAMES:
            raise ValueError(f"at most {MAX_ATTRIBUTE_NAMES} distinct attribute names per job, got {len(names)}")
        return self

    def fingerprint(self) -> str:
        """What the request asks for, canonically: two bodies with equal fingerprints ask for the same job."""
        doc = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(doc.encode()).hexdigest()[:32]


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
    not_in_catalog: list[str] = Field(default_factory=list, description="products live but no longer in the catalog")
    retired: list[dict[str, Any]] = Field(default_factory=list, description="images taken down by this run")
    summary_uri: str | None = None
    review_uri: str | None = None


class CatalogEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    brand: Brand
    skus: list[Sku] | None = Field(None, min_length=1, max_length=10000, description="the changed SKUs")
    catalog: Uri | None = Field(None, description="catalog URI (default: the service's LIGHTBOX_DEFAULT_CATALOG)")
    retire_missing: bool = Field(False, description="named SKUs the catalog no longer has (deleted products) are taken "
                                                    "down; without it they stay live and are named in the run's summary")

    @model_validator(mode="after")
    def _something(self) -> CatalogEvent:
        if self.skus is None and self.catalog is None:
            raise ValueError("name the changed 'skus', a 'catalog', or both")
        return self


class Conflict(BaseModel):
    detail: str
    job_id: str = Field(description="the job the Idempotency-Key already belongs to")


@dataclass(frozen=True)
class Caller:
    """Who called: the key's name (a tenant) and whether it may see every key's jobs."""

    name: str
    admin: bool = False


class EventAccepted(BaseModel):
    event_id: str
    event: str
    skus: int | None
    catalog: str


# --- the app --------------------------------------------------------------------------------------------
def _unprocessable(loc: list, msg: str) -> HTTPException:
    return HTTPException(422, detail=[{"loc": loc, "msg": msg, "type": "value_error"}])


def normalise_uri(uri: str, loc: list) -> str:
    """A catalog or photo URI in one canonical form before any prefix check: control characters refused;
    local paths and file:// URIs percent-decoded and resolved (``..``, symlinks) to ``file://<real path>``;
    s3:// keys must not contain ``.`` or ``..`` segments, raw or percent-encoded. 422 otherwise."""
    if any(ord(c) < 32 or ord(c) == 127 for c in uri):
        raise _unprocessable(loc, "URI contains control characters (NUL, newline, ...)")
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else "file"
    if scheme == "file":
        path = unquote(uri[len("file://"):]) if uri.lower().startswith("file://") else uri
        if "\x00" in path or not path:
            raise _unprocessable(loc, "local path is empty or contains a NUL byte")
        return "file://" + os.path.realpath(path)
    if scheme in ("s3", "s3a"):
        rest = uri.split("://", 1)[1]
        decoded = unquote(rest)
        if any(ord(c) < 32 for c in decoded) or any(seg in (".", "..") for seg in decoded.split("/")):
            raise _unprocessable(loc, "s3 URI must not contain '.' or '..' segments or control characters")
        return "s3://" + posixpath.normpath(rest) + ("/" if rest.endswith("/") and rest.strip("/") else "")
    raise _unprocessable(loc, f"scheme {scheme!r} is not allowed for catalogs (a local path under the allowed prefixes, or s3://)")


class BodyLimit:
    """ASGI middleware: 413 for a body over ``limit`` bytes, by Content-Length or while streaming."""

    def __init__(self, app, limit: int):  # ASGI app
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):  # ASGI signature
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

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _too_large(self, send) -> None:
        body = json.dumps({"detail": f"request body is over {self.limit} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    app = FastAPI(title="Lightbox job API", version="1", description=__doc__)
    app.state.keys = KeyStore(settings.keys_file)
    app.add_middleware(BodyLimit, limit=settings.max_body)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    @app.exception_handler(httpx.TransportError)
    @app.exception_handler(PrefectHTTPStatusError)
    async def _scheduler_down(request: Request, exc: Exception) -> JSONResponse:
        """Prefect unreachable, too slow or failing (5xx): 503 with Retry-After and one line, never a 500."""
        if isinstance(exc, PrefectHTTPStatusError) and exc.response.status_code < 500:
            raise exc
        return _unavailable(scheduler_problem(exc))

    health: dict[str, Any] = {"at": None, "problem": None, "asking": None}

    async def ask_prefect() -> None:
        """GET the server's /health with one long-lived HTTP client: building a Prefect client per probe held the
        event loop for ~120 ms (a /healthz answer waited that long)."""
        from prefect.settings import PREFECT_API_URL

        url = PREFECT_API_URL.value()
        if not url:  # an ephemeral server: nothing to ask; a submit still answers 503 if it cannot reach one
            health.update(at=time.monotonic(), problem=None)
            return
        if health.get("http") is None:
            health["http"] = httpx.AsyncClient(timeout=5)
        try:
            r = await health["http"].get(url.rstrip("/") + "/health")
            err: BaseException | None = None if r.status_code == 200 else httpx.HTTPStatusError(
                f"answered {r.status_code}", request=r.request, response=r)
        except Exception as e:  # any failure of the probe is the answer
            err = e
        health.update(at=time.monotonic(), problem=scheduler_problem(err) if err is not None else None)

    async def prefect_problem() -> str | None:
        """Why Prefect is not usable (None when it is). Asked once at the first call; after that the last answer is
        given at once while a fresh one is asked in the background at most every HEALTH_TTL_S, so /healthz and a
        submit never wait on the probe."""
        if health["at"] is None:
            await ask_prefect()
        elif time.monotonic() - health["at"] > HEALTH_TTL_S and (health["asking"] is None or health["asking"].done()):
            health["asking"] = asyncio.create_task(ask_prefect())
        return health["problem"]

    def brand_spec_path(brand: str, loc: list) -> str:
        path = Path(settings.brands_dir) / f"{brand}.yaml"
        if not path.is_file():
            raise _unprocessable(loc, f"unknown brand {brand!r} (no {path})")
        return str(path)

    def check_catalog(uri: str, loc: list) -> str:
        """The catalog URI, normalised, when it lies under an allowed prefix; else 422 (never a 500)."""
        normal = normalise_uri(uri, loc)
        allowed = [settings.incoming_uri, *settings.catalog_prefixes]
        roots = [normalise_uri(p, loc) for p in allowed]
        if not any(normal == r or normal.startswith(r.rstrip("/") + "/") for r in roots):
            shown = ", ".join(settings.catalog_prefixes) or "none configured: set LIGHTBOX_API_CATALOG_PREFIXES"
            raise _unprocessable(loc, f"catalog {uri!r} is outside the allowed locations ({shown})")
        return normal

    # the fetch policy the runs apply (a bad $LIGHTBOX_FETCH_POLICY stops the service at start, naming the field)
    policy = load_fetch_policy(os.environ.get("LIGHTBOX_FETCH_POLICY")).for_catalog("api", settings.local_prefixes)

    def check_images(products: list[ProductIn]) -> None:
        """Photos of an API job are checked at submit against the fetch policy the run applies (its schemes -
        https and s3 by default, no http -, its hosts, no literal private, loopback or metadata address), and
        file:// only inside an operator's LIGHTBOX_API_LOCAL_PREFIXES: refused here, not hours later in the run."""
        roots = [os.path.realpath(p) for p in settings.local_prefixes]
        for i, product in enumerate(products):
            for j, ref in enumerate(product.images):
                scheme = ref.split("://", 1)[0].lower()
                loc = ["body", "products", i, "images", j]
                if scheme == "file":
                    real = normalise_uri(ref, loc).removeprefix("file://")
                    if not any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots):
                        raise _unprocessable(loc, "local files are not allowed for API jobs (outside LIGHTBOX_API_LOCAL_PREFIXES)")
                    continue
                problem = refusal(ref, policy)
                if problem:
                    raise _unprocessable(loc, problem)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        """200 when jobs can be taken; 503 "degraded" while Prefect is unreachable, so a load balancer stops
        sending jobs here. ``/livez`` says only that the process answers."""
        problem = await prefect_problem()
        if problem:
            return JSONResponse({"ok": False, "status": "degraded", "reason": problem}, status_code=503,
                                headers={"Retry-After": str(RETRY_AFTER_S)})
        return JSONResponse({"ok": True, "status": "ok"})

    @app.get("/livez", include_in_schema=False)
    def livez() -> dict:
        return {"ok": True}

    @app.post("/v1/jobs", status_code=202, response_model=JobAccepted,
              responses={409: {"model": Conflict, "description": "Idempotency-Key reused with a different body"},
                         422: {"description": "invalid request, naming the field"}, 503: UNAVAILABLE})
    async def submit_job(body: JobRequest, caller: CallerDep,
                         idempotency_key: str | None = Header(None, max_length=200)) -> JobAccepted:
        from prefect.deployments import run_deployment

        spec_path = brand_spec_path(body.brand, ["body", "brand"])
        fingerprint = body.fingerprint()
        problem = await prefect_problem()  # nothing is written for a job Prefect cannot take now
        if problem:
            return _unavailable(problem)
        written = None  # the product file this request created, removed again if no job takes it
        if body.products is not None:
            if len(body.products) > settings.max_products:
                raise _unprocessable(["body", "products"], f"at most {settings.max_products} products per job")
            await run_in_threadpool(check_images, body.products)  # 2,500 URLs parsed: off the event loop too
            # pandas and pandera off the event loop: /healthz and other requests stay answered
            catalog, created = await run_in_threadpool(_write_products, body.products, spec_path, settings, fingerprint)
            written = catalog if created else None
        else:
            catalog = check_catalog(body.catalog or "", ["body", "catalog"])
        queue = QUEUES[body.priority]
        params = {"catalog": catalog, "brand": spec_path, "out": settings.out, "chunk_size": body.chunk_size,
                  "layout": body.layout, "skus": body.skus, "local_files": settings.local_prefixes,
                  "retire_missing": body.retire_missing}
        try:
            run = await asyncio.wait_for(run_deployment(
                settings.deployment, parameters=params, timeout=0, work_queue_name=queue, as_subflow=False,
                tags=["lightbox", "api", f"priority:{body.priority}", f"brand:{body.brand}", f"key:{caller.name}",
                      f"request:{fingerprint}"],
                idempotency_key=f"{caller.name}:{idempotency_key}" if idempotency_key else None,
            ), timeout=settings.prefect_timeout_s)
        except TimeoutError as e:  # Prefect answered no job in time (a busy SQLite server), but may still create it:
            # its product file stays (a retry writes the same file), and a retry with the same Idempotency-Key gets that job
            return _unavailable(scheduler_problem(e) + "; the job may have been created - retry with the same "
                                "Idempotency-Key to get it rather than a second one")
        except ObjectNotFound:  # the API is up before `lightbox ops deploy` made its deployment
            _discard(written, settings)
            return _unavailable(f"deployment {settings.deployment!r} is not in Prefect yet: run `lightbox ops deploy` "
                                f"(or `prefect deploy`); retry in {RETRY_AFTER_S} s")
        except BaseException:
            _discard(written, settings)
            raise
        if idempotency_key and f"request:{fingerprint}" not in (run.tags or []):
            _discard(written, settings)
            return JSONResponse(Conflict(
                detail=f"Idempotency-Key {idempotency_key!r} was used for job {run.id} with a different request body; "
                       "use a new key for a new request", job_id=str(run.id)).model_dump(), status_code=409)
        return JobAccepted(job_id=str(run.id), status_url=f"/v1/jobs/{run.id}", state=run.state.type.value if run.state else "SCHEDULED",
                           work_queue=queue, catalog=catalog)

    @app.post("/v1/jobs/{job_id}/cancel", status_code=202, response_model=JobStatus, responses={503: UNAVAILABLE})
    async def cancel_job(job_id: uuid.UUID, caller: CallerDep) -> JobStatus:
        from prefect.client.orchestration import get_client
        from prefect.states import Cancelling

        run = await _read_run(job_id, caller)
        if run.state is not None and not run.state.is_final():
            async with get_client() as client:
                await client.set_flow_run_state(run.id, Cancelling(message=f"cancelled through the job API by {caller.name}"),
                                                force=True)
            run = await _read_run(job_id, caller)
        return _status_of(run, settings)

    @app.get("/v1/jobs/{job_id}", response_model=JobStatus, responses={503: UNAVAILABLE})
    async def job_status(job_id: uuid.UUID, caller: CallerDep) -> JobStatus:
        return _status_of(await _read_run(job_id, caller), settings)

    @app.post("/v1/catalog-events", status_code=202, response_model=EventAccepted)
    def catalog_event(body: CatalogEvent, caller: CallerDep) -> EventAccepted:
        from prefect.events import emit_event

        spec_path = brand_spec_path(body.brand, ["body", "brand"])
        catalog = body.catalog or settings.default_catalog
        if not catalog:
            raise _unprocessable(["body", "catalog"], "no catalog named and no LIGHTBOX_DEFAULT_CATALOG configured")
        catalog = check_catalog(catalog, ["body", "catalog"])
        ev = emit_event(
            event=EVENT,
            resource={"prefect.resource.id": f"lightbox.catalog.{body.brand}", "prefect.resource.name": body.brand},
            related=[{"prefect.resource.id": f"lightbox.api-key.{caller.name}", "prefect.resource.role": "requester"}],
            payload={"brand": body.brand, "brand_spec": spec_path, "catalog": catalog, "out": settings.out,
                     "skus": body.skus, "local_files": settings.local_prefixes, "retire_missing": body.retire_missing},
        )
        if ev is None:
            raise HTTPException(503, detail="events are not reaching Prefect (is PREFECT_API_URL set?)")
        return EventAccepted(event_id=str(ev.id), event=EVENT, skus=len(body.skus) if body.skus else None, catalog=catalog)

    return app


def _caller(request: Request, authorization: str | None = Header(None), x_api_key: str | None = Header(None)) -> Caller:
    """The API key presented (``Authorization: Bearer`` or ``X-API-Key``), checked against the hashes; 401 otherwise."""
    presented = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        presented = authorization[7:].strip()
    who = request.app.state.keys.identify(presented)
    if who is None:
        raise HTTPException(401, detail="missing or invalid API key", headers={"WWW-Authenticate": "Bearer"})
    return Caller(name=who[0], admin="admin" in who[1])


CallerDep = Annotated[Caller, Depends(_caller)]


async def _read_run(job_id: uuid.UUID, caller: Caller):  # FlowRun
    """The job's flow run when it is a Lightbox job of this key (any key's for admin); 404 otherwise, so a key
    cannot learn that another key's job exists."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            run = await client.read_flow_run(job_id)
        except ObjectNotFound:
            raise HTTPException(404, detail=f"no job {job_id}") from None
    tags = run.tags or []
    if "lightbox" not in tags or not (caller.admin or f"key:{caller.name}" in tags):
        raise HTTPException(404, detail=f"no job {job_id}")
    return run


def _status_of(run, settings: Settings) -> JobStatus:  # FlowRun
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
        status.not_in_catalog, status.retired = summary.get("not_in_catalog", []), summary.get("retired", [])
        status.summary_uri, status.review_uri = summary.get("summary_uri"), summary.get("review_uri")
    return status


def _unavailable(reason: str) -> JSONResponse:
    return JSONResponse({"detail": reason}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


def scheduler_problem(exc: BaseException) -> str:
    """One line on why Prefect cannot take or answer a job (no traceback, no credentials in the URL)."""
    from prefect.settings import PREFECT_API_URL

    where = (PREFECT_API_URL.value() or "an ephemeral server").split("@")[-1]
    if isinstance(exc, TimeoutError):
        why = "did not answer in time"
    elif isinstance(exc, httpx.TransportError):
        why = f"is unreachable ({type(exc).__name__})"
    else:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        why = f"answered {status}" if status else f"failed ({type(exc).__name__})"
    return f"the scheduler (Prefect API at {where}) {why}; retry in {RETRY_AFTER_S} s"


def _discard(catalog: str | None, settings: Settings) -> None:
    """Remove a product file this request wrote when no job took it (409, Prefect down): no orphan in _incoming."""
    if catalog:
        store = Store(settings.incoming_uri)
        store.delete(store.key_of(catalog))


def _write_products(products: list[ProductIn], spec_path: str, settings: Settings, fingerprint: str) -> tuple[str, bool]:
    """Validate like ingest does (pandera, under the brand spec), then write JSON Lines for the run, named
    by the request's fingerprint (a retried request writes the same file). Returns (its URI, whether this
    request created it)."""
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
    key = f"{fingerprint}.jsonl"
    lines = [json.dumps({"sku": p.sku, "title": p.title, "category": p.category, "images": p.images,
                         "priority": p.priority, "hero": p.hero, "attributes": p.attributes}) for p in products]
    created = not store.exists(key)
    store.write_atomic(key, ("\n".join(lines) + "\n").encode())
    return store.uri(key), created


def _read_summary(out: str, flow_run_id: str) -> dict | None:
    try:
        return json.loads(Store(out).read(job_key(flow_run_id)))
    except (FileNotFoundError, LightboxError, OSError, ValueError):
        return None

