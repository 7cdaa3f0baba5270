"""The job API as a hostile client sees it, over real HTTP (``lightbox api`` as a uvicorn process on
127.0.0.1, pointed at the session's Prefect server): local files, traversal in every encoding, NUL bytes,
stalls, other tenants' jobs, idempotency conflicts; and the reports such input ends up in.

Each case here failed on main before issue 12 (file:// photos rendered, /etc/passwd's first bytes quoted,
3,000 attributes blocked the event loop for 23.7 s, any key read any job, a reused Idempotency-Key with a
new body silently returned the first job, formula cells in quarantine.csv, raw HTML in the report)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest

from api.keys import create_key
from tests.conftest import REPO
from tests.e2e.test_service import _wait
from tests.support.helpers import free_port
from tests.support.images import studio_photo, to_bytes
from tests.support.api import PRODUCT

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def server(deployment, tmp_path_factory):
    """``lightbox api`` on a free loopback port, keys for two tenants and an admin, local prefixes configured."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    root = tmp_path_factory.mktemp("hostile")
    keys = root / "keys.json"
    tenants = {"alice": create_key(keys, "alice"), "bob": create_key(keys, "bob"),
               "ops": create_key(keys, "ops", scopes=["admin"])}
    photos = root / "photos"
    photos.mkdir()
    (photos / "mug.jpg").write_bytes(to_bytes(studio_photo(400, 500, seed=1)[0], "JPEG"))
    (root / "secret.txt").write_text("root:x:0:0:root:/root:/bin/bash\n")
    os.symlink(root / "secret.txt", photos / "link.jpg")  # a symlink inside the allowed folder, pointing out
    feeds = root / "feeds"
    feeds.mkdir()
    (feeds / "catalog.csv").write_text("sku,title,category,image\n")

    async def name():
        async with get_client() as client:
            return f"catalog-run/{(await client.read_deployment(deployment)).name}"

    env = {"PREFECT_API_URL": PREFECT_API_URL.value(), "LIGHTBOX_API_KEYS_FILE": str(keys),
           "LIGHTBOX_API_OUT": str(root / "out"), "LIGHTBOX_API_BRANDS_DIR": str(REPO / "brand_specs"),
           "LIGHTBOX_API_DEPLOYMENT": asyncio.run(name()), "LIGHTBOX_API_CATALOG_PREFIXES": str(feeds),
           "LIGHTBOX_API_LOCAL_PREFIXES": str(photos)}
    with _api_process(env, root / "api.log", ready="/healthz") as base:
        yield {"base": base, "keys": tenants, "root": root, "photos": photos, "feeds": feeds}


@contextlib.contextmanager
def _api_process(env: dict[str, str], log_path, ready: str):  # log_path: a Path; yields the base URL
    """``lightbox api`` on a free loopback port with ``env`` over the test's environment, until ``ready`` answers 200."""
    port = free_port()
    full = {**os.environ, **env}
    full.pop("LIGHTBOX_API_MAX_BODY", None)
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "api", "--port", str(port)], cwd=REPO, env=full,
                                stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait("the job API", lambda: httpx.get(f"{base}{ready}", timeout=2).status_code == 200, 60)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def _client(server, who: str = "alice") -> httpx.Client:
    return httpx.Client(base_url=server["base"], headers={"Authorization": f"Bearer {server['keys'][who]}"}, timeout=60)


def _detail(r: httpx.Response) -> str:
    return json.dumps(r.json())


@pytest.mark.parametrize("image, accepted", [
    ("file:///etc/passwd", False),
    ("file://{photos}/../secret.txt", False),
    ("file://{photos}/%2e%2e/secret.txt", False),
    ("file://{photos}/link.jpg", False),  # a symlink resolving outside the allowed folder
    ("file://{photos}/mug.jpg", True),
    ("ftp://example.com/mug.jpg", False),
    ("http://cdn.example.com/mug.jpg", False),  # the run's fetch policy takes https and s3 only
    ("https://169.254.169.254/latest/meta-data/iam", False),  # a cloud metadata address, refused at submit
    ("https://[::1]/mug.jpg", False),
    ("https://cdn.example.com/mug.jpg", True),
])
def test_local_photos_only_inside_the_operators_prefixes(server, image, accepted):
    ref = image.format(photos=server["photos"])
    r = _client(server).post("/v1/jobs", json={"brand": "acme-home", "products": [{**PRODUCT, "images": [ref]}]})
    assert r.status_code == (202 if accepted else 422), r.text
    if not accepted:
        assert "root:x" not in r.text and r.json()["detail"][0]["loc"][:3] == ["body", "products", 0]


@pytest.mark.parametrize("catalog, message", [
    ("{feeds}/../secret.txt", "outside the allowed locations"),
    ("file://{feeds}/%2e%2e/secret.txt", "outside the allowed locations"),
    ("{feeds}/catalog.csv\u0000.csv", "control characters"),
    ("s3://other-bucket/catalog.csv", "outside the allowed locations"),
    ("s3://bucket/feeds/../../x.csv", "must not contain '.' or '..' segments"),
    ("https://example.com/catalog.csv", "scheme 'https' is not allowed for catalogs"),
])
def test_catalog_uris_are_normalised_before_the_prefix_check(server, catalog, message):
    r = _client(server).post("/v1/jobs", json={"brand": "acme-home", "catalog": catalog.format(feeds=server["feeds"])})
    assert r.status_code == 422, r.text
    assert message in _detail(r)


def test_a_catalog_inside_the_prefix_is_accepted_in_its_real_form(server):
    r = _client(server).post("/v1/jobs", json={"brand": "acme-home", "catalog": f"{server['feeds']}/./catalog.csv"})
    assert r.status_code == 202, r.text
    assert r.json()["catalog"] == "file://" + os.path.realpath(server["feeds"] / "catalog.csv")


def test_limits_are_in_the_schema_and_refuse_before_any_work(server):
    schema = httpx.get(f"{server['base']}/openapi.json").json()["components"]["schemas"]
    assert schema["ProductIn"]["properties"]["attributes"]["maxProperties"] == 100
    assert schema["JobRequest"]["properties"]["products"]["anyOf"][0]["maxItems"] == 5000
    many = {f"a{i}": "x" for i in range(3000)}
    t = time.perf_counter()
    r = _client(server).post("/v1/jobs", json={"brand": "acme-home", "products": [{**PRODUCT, "attributes": many}]})
    took = time.perf_counter() - t
    assert r.status_code == 422 and "at most 100 items" in _detail(r).replace("Dictionary should have at most 100 items", "at most 100 items")
    print(f"3,000 attributes refused in {took * 1000:.0f} ms")  # main: 23.7 s of a blocked event loop


def test_healthz_answers_while_a_maximal_request_is_validated(server):
    """~0.95 MB, 2,500 products x 10 attributes: validated off the event loop, /healthz stays fast."""
    products = [{**PRODUCT, "sku": f"MAX-{i:05d}", "images": [f"https://cdn.example.com/{i}.jpg"],
                 "attributes": {"color": "red", "material": "stoneware", **{f"extra{j}": f"value-{i}-{j}" for j in range(8)}}}
                for i in range(2500)]
    body = json.dumps({"brand": "acme-home", "products": products})
    assert 800_000 < len(body) < 1_000_000
    # warm up: the first submit imports Prefect's deployment client on the event loop (a one-off, not per request)
    assert _client(server).post("/v1/jobs", json={"brand": "acme-home", "products": [PRODUCT]}).status_code == 202
    latencies: list[float] = []
    done = threading.Event()

    def probe():
        with httpx.Client(base_url=server["base"], timeout=10) as c:
            while not done.is_set():
                t = time.perf_counter()
                assert c.get("/healthz").status_code == 200
                latencies.append(time.perf_counter() - t)
                time.sleep(0.02)

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        t = time.perf_counter()
        r = _client(server).post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
        took = time.perf_counter() - t
    finally:
        done.set()
        thread.join(timeout=30)
    assert r.status_code == 202, r.text[:500]
    assert len(latencies) >= 3 and max(latencies) < 0.1, (took, sorted(latencies)[-5:])
    print(f"maximal request accepted in {took:.2f} s; /healthz max {max(latencies) * 1000:.0f} ms over {len(latencies)} probes")


def test_keys_are_tenants(server):
    alice, bob, ops = _client(server, "alice"), _client(server, "bob"), _client(server, "ops")
    job = alice.post("/v1/jobs", json={"brand": "acme-home", "products": [{**PRODUCT, "sku": "TENANT-1"}]}).json()
    assert alice.get(job["status_url"]).status_code == 200
    assert bob.get(job["status_url"]).status_code == 404  # not 403: bob cannot learn the job exists
    assert bob.post(f"{job['status_url']}/cancel").status_code == 404
    assert ops.get(job["status_url"]).status_code == 200  # the admin scope sees every key's jobs
    cancelled = alice.post(f"{job['status_url']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["state"] in ("CANCELLING", "CANCELLED"), cancelled.text


def test_an_idempotency_key_reused_with_another_body_is_409(server):
    alice, bob = _client(server, "alice"), _client(server, "bob")
    key = {"Idempotency-Key": f"order-{uuid.uuid4().hex[:8]}"}
    first = alice.post("/v1/jobs", json={"brand": "acme-home", "products": [PRODUCT]}, headers=key)
    again = alice.post("/v1/jobs", json={"brand": "acme-home", "products": [PRODUCT]}, headers=key)
    assert first.status_code == again.status_code == 202 and first.json()["job_id"] == again.json()["job_id"]
    other = alice.post("/v1/jobs", json={"brand": "acme-home", "products": [{**PRODUCT, "sku": "OTHER-1"}]}, headers=key)
    incoming = server["root"] / "out" / "_incoming"
    before = sorted(incoming.iterdir())
    assert other.status_code == 409, other.text
    assert other.json()["job_id"] == first.json()["job_id"] and "different request body" in other.json()["detail"]
    assert sorted(incoming.iterdir()) == before  # the refused request's product file is not left behind
    # keys are per tenant: bob's same Idempotency-Key is his own
    assert bob.post("/v1/jobs", json={"brand": "acme-home", "products": [{**PRODUCT, "sku": "OTHER-1"}]},
                    headers=key).status_code == 202


def test_a_row_without_an_image_gets_only_its_true_reason(server):
    r = _client(server).post("/v1/jobs", json={"brand": "acme-home", "products": [{**PRODUCT, "images": []}]})
    assert r.status_code == 422
    assert [d["msg"] for d in r.json()["detail"]] == ["no source image (only hero products may omit one)"]


def test_no_5xx_for_odd_paths_and_bodies(server):
    c = _client(server)
    for method, path, body in [("POST", "/v1/jobs", "not json"), ("POST", "/v1/jobs", "[]"), ("GET", "/v1/jobs/%00", None),
                               ("POST", "/v1/jobs", json.dumps({"brand": "acme-home", "catalog": "\u0000"})),
                               ("POST", "/v1/catalog-events", json.dumps({"brand": "acme-home", "catalog": "/etc/passwd"}))]:
        r = c.request(method, path, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code < 500, (method, path, r.status_code, r.text)


# --- the reports such input ends up in -------------------------------------------------------------------
def test_quarantine_csv_neutralises_formulas():
    from lightbox.records import QuarantinedRow
    from lightbox.report import quarantine_csv
    from lightbox.run import Run
    from lightbox.storage import Store

    rows = [QuarantinedRow(row=1, sku="=1+2", reason="-2+3 @SUM(A1)", column="+x"),
            QuarantinedRow(row=2, sku="\tTAB", reason="=HYPERLINK(\"http://evil\")")]
    run = Run(run_id="r", brand="b", spec_version=1, catalog="c", out_uri="/tmp", started=0.0, ingested=2, quarantine=rows)
    summary = run.summary([], Store("/tmp"), clock=lambda: 1.0)
    cells = [c for row in csv.reader(io.StringIO(quarantine_csv(summary).decode())) for c in row]
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells), cells
    assert "'=1+2" in cells and "'=HYPERLINK(\"http://evil\")" in cells


def test_terminal_and_markdown_show_catalog_text_as_text(capsys):
    from flows.cli import _print_summary
    from lightbox.records import QuarantinedRow
    from lightbox.run import Run
    from lightbox.storage import Store

    evil = "\x1b]0;pwned\x07\x1b[2J<script>alert(1)</script> [x](javascript:alert(1))"
    run = Run(run_id="r", brand="b", spec_version=1, catalog="c", out_uri="/tmp", started=0.0, ingested=1,
              quarantine=[QuarantinedRow(row=1, sku="S-1", reason=f"bad value {evil}")])
    summary = run.summary([], Store("/tmp"), clock=lambda: 1.0)
    _print_summary(summary)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b]0;pwned\\x07" in out
    md = summary.markdown()
    assert "<script>" not in md and "&lt;script&gt;" in md and "](javascript" not in md


def test_no_error_text_quotes_the_bytes_of_a_refused_file(tmp_path):
    from lightbox.errors import ItemError
    from lightbox.fetch import SourceFetcher
    from lightbox.fetch_policy import FetchPolicy
    from lightbox.imaging.decode import decode_image

    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    fetcher = SourceFetcher(FetchPolicy(cache_dir=str(tmp_path / "c")).for_catalog(str(tmp_path / "cat.csv")))
    with pytest.raises(ItemError) as err:
        fetcher.read(str(secret))
    assert "root:x" not in str(err.value) and "not an image" in str(err.value)
    with pytest.raises(ItemError) as err:
        decode_image(secret.read_bytes(), max_pixels=10_000_000)
    assert "root:x" not in str(err.value)
    confined = SourceFetcher(FetchPolicy(cache_dir=str(tmp_path / "c")).for_catalog("x.csv", local_files=[str(tmp_path / "photos")]))
    with pytest.raises(ItemError, match="outside the folders"):
        confined.read(str(secret))
    none = SourceFetcher(FetchPolicy(cache_dir=str(tmp_path / "c")).for_catalog("x.csv", local_files=[]))
    with pytest.raises(ItemError, match="scheme 'file' is not allowed"):
        none.read(str(secret))


def test_catalogs_in_other_encodings_are_read_and_broken_rows_reported_one_by_one(tmp_path):
    from lightbox.catalog.ingest import read_catalog

    legacy = tmp_path / "excel.csv"
    legacy.write_bytes("sku,title,category,image\nA-1,Caf\xe9 cr\xe8me,kitchen,a.jpg\n".encode("cp1252"))
    frame = read_catalog(str(legacy))
    assert frame.loc[0, "title"] == "Café crème" and frame.attrs["encoding"] == "cp1252"
    assert any(n["kind"] == "warning" and "not UTF-8: read as Windows-1252" in n["reason"] for n in frame.attrs["notes"])

    utf16 = tmp_path / "unicode-text.tsv"
    utf16.write_bytes("sku\ttitle\tcategory\timage\nA-1\tCafé\tkitchen\ta.jpg\n".encode("utf-16"))
    frame = read_catalog(str(utf16))
    assert frame.loc[0, "title"] == "Café" and frame.attrs["encoding"] == "utf-16"

    mixed = tmp_path / "mixed.csv"
    mixed.write_bytes(b"sku,title,category,image\nA-1,Caf\xc3\xa9,kitchen,a.jpg\nA-2,Bo\xe9wl,kitchen,b.jpg\nA-3,Plate,kitchen,c.jpg\n")
    frame = read_catalog(str(mixed))
    assert list(frame["sku"]) == ["A-1", "A-3"] and frame.loc[0, "title"] == "Café"
    (note,) = [n for n in frame.attrs["notes"] if n["kind"] == "invalid"]
    assert note["row"] == 2 and note["sku"] == "A-2" and note["column"] == "title" and "not valid UTF-8" in note["reason"]
    assert "\xe9" not in note["reason"] and "Bo" not in note["reason"]


def test_a_job_with_a_local_photo_inside_the_prefix_is_allowed_to_read_it(tmp_path):
    """The run side of the policy: an API job's flow gets local_files, so only those folders are readable."""
    from lightbox.errors import ItemError
    from lightbox.fetch import SourceFetcher
    from lightbox.fetch_policy import FetchPolicy

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "mug.jpg").write_bytes(to_bytes(studio_photo(200, 200, seed=2)[0], "JPEG"))
    policy = FetchPolicy(cache_dir=str(tmp_path / "c")).for_catalog("/srv/incoming/x.jsonl", local_files=[str(photos)])
    assert SourceFetcher(policy).read(f"file://{photos}/mug.jpg")[:2] == b"\xff\xd8"
    with pytest.raises(ItemError, match="outside the folders"):
        SourceFetcher(policy).read(f"file://{photos}/../mug.jpg")


@pytest.mark.slow
def test_prefect_down_is_503_with_retry_after_and_healthz_degraded(tmp_path):
    """Issue 25, items 7 and 16: with the scheduler unreachable, submit, status and cancel answer 503 with
    Retry-After and one line (not 500), nothing is written to _incoming, /healthz says degraded, /livez answers."""
    keys = tmp_path / "keys.json"
    key = create_key(keys, "alice")
    dead = free_port()
    env = {"PREFECT_API_URL": f"http://127.0.0.1:{dead}/api", "LIGHTBOX_API_KEYS_FILE": str(keys),
           "LIGHTBOX_API_OUT": str(tmp_path / "out"), "LIGHTBOX_API_BRANDS_DIR": str(REPO / "brand_specs")}
    with _api_process(env, tmp_path / "api.log", ready="/livez") as base:
        health = httpx.get(f"{base}/healthz", timeout=30)
        assert health.status_code == 503 and health.json()["status"] == "degraded", health.text
        assert f"127.0.0.1:{dead}" in health.json()["reason"]
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
            answers = [c.post("/v1/jobs", json={"brand": "acme-home", "products": [PRODUCT]}),
                       c.get(f"/v1/jobs/{uuid.uuid4()}"), c.post(f"/v1/jobs/{uuid.uuid4()}/cancel")]
        for r in answers:
            assert r.status_code == 503 and r.headers["retry-after"] == "30", r.text
            assert r.json()["detail"].startswith(f"the scheduler (Prefect API at http://127.0.0.1:{dead}/api) is unreachable")
        assert not (tmp_path / "out" / "_incoming").exists() or not any((tmp_path / "out" / "_incoming").iterdir())
    assert "Traceback" not in (tmp_path / "api.log").read_text()
