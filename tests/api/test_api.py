"""The job API in-process (FastAPI's TestClient) against the Prefect test harness: keys, 401/413/422,
jobs become deployment runs on the queue of their priority, idempotent submits, status, events.
The API as a real server process, with a worker running the jobs, is in tests/e2e/."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import Settings, create_app
from api.keys import KeyStore, create_key, hash_key, revoke_key
from flows.cli import main
from lightbox.catalog.ingest import read_catalog, to_products
from tests.conftest import REPO
from tests.support.api import PRODUCT

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def api(tmp_path, deployment):
    from prefect.client.orchestration import get_client

    async def name():
        async with get_client() as client:
            d = await client.read_deployment(deployment)
            return f"catalog-run/{d.name}"

    keys = tmp_path / "keys.json"
    key = create_key(keys, "pim")
    settings = Settings(keys_file=str(keys), out=str(tmp_path / "out"), brands_dir=str(REPO / "brand_specs"),
                        catalog_prefixes=[str(tmp_path / "feeds"), "s3://"], deployment=asyncio.run(name()),
                        max_body=20_000, default_catalog=str(tmp_path / "feeds" / "catalog.csv"))
    client = TestClient(create_app(settings))
    client.headers["Authorization"] = f"Bearer {key}"
    return client, key, settings




def _run(job_id: str):
    from prefect.client.orchestration import get_client

    async def read():
        async with get_client() as client:
            return await client.read_flow_run(uuid.UUID(job_id))

    return asyncio.run(read())


def test_keys_are_required_and_stored_hashed(api, tmp_path):
    client, key, settings = api
    assert client.get("/healthz").status_code == 200  # no key needed
    bare = TestClient(client.app)
    r = bare.post("/v1/jobs", json={"brand": "acme-home", "products": [PRODUCT]})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert bare.post("/v1/jobs", json={}, headers={"Authorization": "Bearer lbx_wrong"}).status_code == 401
    assert bare.get(f"/v1/jobs/{uuid.uuid4()}", headers={"X-API-Key": key}).status_code == 404  # the other header works
    stored = json.loads(open(settings.keys_file).read())["keys"]
    assert stored[0]["sha256"] == hash_key(key) and key not in open(settings.keys_file).read()
    assert revoke_key(settings.keys_file, "pim")
    assert client.get(f"/v1/jobs/{uuid.uuid4()}").status_code == 401  # revoked without a restart


def test_cli_creates_a_key_once(tmp_path, capsys):
    keys = tmp_path / "k.json"
    assert main(["api-key", "create", "catalog-sync", "--file", str(keys)]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("lbx_") and KeyStore(keys).check(key) == "catalog-sync"
    assert main(["api-key", "create", "catalog-sync", "--file", str(keys)]) == 2  # names are unique


@pytest.mark.parametrize(
    "body, loc, msg",
    [
        ({"products": [PRODUCT]}, ["body", "brand"], "Field required"),
        ({"brand": "acme-home"}, ["body"], "exactly one of 'catalog' and 'products'"),
        ({"brand": "acme-home", "products": [{**PRODUCT, "sku": "A/../B"}]}, ["body", "products", 0, "sku"], "not filename-safe"),
        ({"brand": "acme-home", "products": [{**PRODUCT, "category": "garden"}]}, ["body", "products", 0, "category"],
         "category 'garden' is not in the brand spec"),
        ({"brand": "acme-home", "products": [{**PRODUCT, "images": ["img/mug.jpg"]}]}, ["body", "products", 0, "images"],
         "not an absolute URL"),
        ({"brand": "acme-home", "products": [PRODUCT, PRODUCT]}, ["body", "products", 0, "sku"], "appears more than once"),
        ({"brand": "nope", "products": [PRODUCT]}, ["body", "brand"], "unknown brand 'nope'"),
        ({"brand": "acme-home", "catalog": "/etc/passwd"}, ["body", "catalog"], "outside the allowed locations"),
        ({"brand": "acme-home", "products": [PRODUCT], "priority": "asap"}, ["body", "priority"], "Input should be"),
        ({"brand": "acme-home", "products": [PRODUCT], "retire_missing": True}, ["body"], "'retire_missing' needs a 'catalog'"),
    ],
)
def test_malformed_jobs_are_422_naming_the_field(api, body, loc, msg):
    client, _, _ = api
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert any(d["loc"][: len(loc)] == loc and msg in d["msg"] for d in detail), detail


def test_oversized_bodies_are_413(api):
    client, _, settings = api
    big = {"brand": "acme-home", "products": [{**PRODUCT, "sku": f"SKU-{i}"} for i in range(300)]}
    r = client.post("/v1/jobs", json=big)
    assert r.status_code == 413 and "over 20000 bytes" in r.json()["detail"]
    chunks = (json.dumps(big).encode()[i : i + 4096] for i in range(0, 200_000, 4096))
    r = client.post("/v1/jobs", content=chunks, headers={"Content-Type": "application/json"})  # no Content-Length
    assert r.status_code == 413


def test_a_product_job_becomes_an_urgent_deployment_run(api, tmp_path):
    client, _, settings = api
    r = client.post("/v1/jobs", json={"brand": "acme-home", "products": [PRODUCT], "priority": "urgent"},
                    headers={"Idempotency-Key": "order-42"})
    assert r.status_code == 202, r.text
    job = r.json()
    run = _run(job["job_id"])
    assert run.work_queue_name == "urgent" and {"lightbox", "priority:urgent", "brand:acme-home", "key:pim"} <= set(run.tags)
    p = run.parameters
    assert p["brand"].endswith("brand_specs/acme-home.yaml") and p["out"] == settings.out and p["skus"] is None
    assert p["retire_missing"] is False
    (product,) = to_products(read_catalog(p["catalog"]))  # the posted products, as the run will read them
    assert (product.sku, product.images, product.attributes["color"]) == ("API-MUG-1", PRODUCT["images"], "red")
    # the same POST again (a client retry) is the same job
    again = client.post("/v1/jobs", json={"brand": "acme-home", "products": [PRODUCT], "priority": "urgent"},
                        headers={"Idempotency-Key": "order-42"})
    assert again.json()["job_id"] == job["job_id"]
    status = client.get(job["status_url"]).json()
    assert status["state"] == "SCHEDULED" and status["priority"] == "urgent" and status["counts"] is None


def test_a_catalog_job_with_skus_and_a_low_priority(api, tmp_path):
    client, _, _ = api
    catalog = tmp_path / "feeds" / "catalog.csv"
    r = client.post("/v1/jobs", json={"brand": "acme-home", "catalog": str(catalog), "skus": ["A-1", "B-2"], "priority": "low",
                                      "retire_missing": True})  # B-2 deleted from the shop: its images taken down
    assert r.status_code == 202, r.text
    run = _run(r.json()["job_id"])
    assert run.work_queue_name == "nightly" and run.parameters["skus"] == ["A-1", "B-2"]
    assert run.parameters["retire_missing"] is True
    assert run.parameters["catalog"] == "file://" + os.path.realpath(catalog)  # normalised before the prefix check


def test_status_of_unknown_jobs(api):
    client, _, _ = api
    assert client.get(f"/v1/jobs/{uuid.uuid4()}").status_code == 404
    assert client.get("/v1/jobs/not-a-uuid").status_code == 422


def test_catalog_events_are_accepted_and_validated(api):
    client, _, _ = api
    r = client.post("/v1/catalog-events", json={"brand": "acme-home", "skus": ["ACM-MUG-001", "NOPE"]})
    assert r.status_code == 202, r.text
    assert r.json()["event"] == "lightbox.catalog.updated" and r.json()["skus"] == 2
    bad = client.post("/v1/catalog-events", json={"brand": "acme-home"})
    assert bad.status_code == 422 and "name the changed 'skus'" in json.dumps(bad.json())


def test_openapi_schema_is_served(api):
    client, _, _ = api
    schema = client.get("/openapi.json").json()
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/catalog-events"} <= set(schema["paths"])
    assert "JobRequest" in schema["components"]["schemas"]


def test_automations_as_code_apply_idempotently():
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.client.orchestration import get_client

    from deployments.apply import apply_automations, load_automations

    CustomWebhookNotificationBlock(name="lightbox-ops", url="http://127.0.0.1:9/ops",
                                   json_data={"text": "{{body}}"}).save("lightbox-ops", overwrite=True)
    names = [a["name"] for a in load_automations(str(REPO / "deployments"))]
    for _ in range(2):  # applying twice replaces, never duplicates
        lines = apply_automations(str(REPO / "deployments"))
        assert len(lines) == len(names) and all("applied" in line for line in lines)
    with get_client(sync_client=True) as client:
        for name in names:
            (automation,) = client.read_automations_by_name(name)
            assert automation.enabled and automation.actions[0].type == "send-notification"
        stuck = client.read_automations_by_name("lightbox-run-stuck")[0]
        assert stuck.trigger.posture == "Proactive" and stuck.trigger.within.total_seconds() == 21600


def test_a_submit_before_the_deployment_exists_is_a_503_naming_the_command(api, tmp_path):
    client, key, settings = api
    missing = TestClient(create_app(dataclasses.replace(settings, deployment="catalog-run/not-deployed-yet")))
    missing.headers["Authorization"] = f"Bearer {key}"
    r = missing.post("/v1/jobs", json={"brand": "acme-home", "products": [PRODUCT]})
    assert r.status_code == 503 and r.headers["retry-after"] == "30", r.text
    assert "'catalog-run/not-deployed-yet' is not in Prefect yet: run `lightbox ops deploy`" in r.json()["detail"]
    incoming = Path(settings.incoming_uri)
    assert not incoming.exists() or not list(incoming.glob("*.jsonl"))  # its product file went with it
