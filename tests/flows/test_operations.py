"""Operations under the Prefect test harness: runs limited to SKUs (catalog updates), signed webhooks to
real receivers on 127.0.0.1 (one up, one down), CloudFront invalidation against moto's endpoint, and
two runs of one brand at once (they take turns; nothing is written twice)."""

from __future__ import annotations

import json
import threading

import pytest

from flows.catalog_run import catalog_run
from lightbox.webhooks import SIGNATURE_HEADER, verify
from tests.conftest import ACME
from tests.support.http_server import WebhookReceiver, closed_port_url
from tests.support.images import studio_photo, to_bytes
from tests.support.helpers import add_thumbnail, make_catalog

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]
SECRET = "whsec-test-0123456789"


def _entries(out) -> dict:  # a Path
    """What the run state records for the brand under an output root."""
    from lightbox.state import RunState
    from lightbox.storage import Store

    return RunState.of(Store(str(out))).entries("acme-home")


def _hooks(tmp_path, *urls: str, retries: int = 2) -> str:
    subs = "".join(f"  - {{name: sub{i}, url: '{u}', secret_env: LIGHTBOX_TEST_HOOK_SECRET}}\n" for i, u in enumerate(urls))
    path = tmp_path / "webhooks.yaml"
    path.write_text(f"subscribers:\n{subs}timeout_s: 2\nretries: {retries}\nbackoff_s: 0.05\n")
    return str(path)


@pytest.mark.slow
def test_a_run_limited_to_skus_renders_only_what_changed_and_reports_unknown(tmp_path):
    catalog = make_catalog(tmp_path / "cat", n_good=4)
    out = str(tmp_path / "out")
    first = catalog_run(str(catalog), brand=ACME, out=out, chunk_size=2)
    assert first.published == 12
    # GOOD-1's photo changes; an update names it, an untouched product and a SKU the catalog lacks
    (tmp_path / "cat" / "img" / "good-1.jpg").write_bytes(to_bytes(studio_photo(800, 1000, seed=77)[0], "JPEG", quality=92))
    s = catalog_run(str(catalog), brand=ACME, out=out, chunk_size=2, skus=["GOOD-1", "GOOD-3", "NOPE-9"])
    assert (s.products, s.generated, s.unchanged, s.published) == (2, 3, 3, 3)
    assert {i["sku"] for i in s.published_images} == {"GOOD-1"}
    assert s.unknown_skus == ["NOPE-9"] and s.skus_requested == ["GOOD-1", "GOOD-3", "NOPE-9"]
    manifest = _entries(tmp_path / "out")
    assert len(manifest) == 12  # the other products' entries are kept
    assert manifest["GOOD-1/amazon_main"]["run_id"] == s.run_id != manifest["GOOD-0/amazon_main"]["run_id"]


@pytest.mark.slow
def test_signed_webhooks_and_a_receiver_that_is_down(tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTBOX_TEST_HOOK_SECRET", SECRET)
    catalog = make_catalog(tmp_path / "cat", n_good=3)
    out = str(tmp_path / "out")
    with WebhookReceiver(statuses=[503]) as rx:  # its first answer is a 503: retried
        hooks = _hooks(tmp_path, rx.url, closed_port_url())
        s = catalog_run(str(catalog), brand=ACME, out=out, chunk_size=2, webhooks=hooks)
        assert s.published == 9  # the receiver that is down changed nothing about publishing
        events = []
        for headers, body in rx.posts:
            assert verify(SECRET, body, headers[SIGNATURE_HEADER.lower()])
            assert not verify("wrong-secret", body, headers[SIGNATURE_HEADER.lower()])
            events.append(json.loads(body))
        published = {e["data"]["sku"]: e for e in events if e["type"] == "image.published"}
        assert set(published) == {"GOOD-0", "GOOD-1", "GOOD-2"}
        img = published["GOOD-0"]["data"]["images"][0]
        assert set(img) >= {"channel", "uri", "sha256", "qc"} and img["qc"] in ("passed", "warned")
        done = [e for e in events if e["type"] == "run.completed"]
        assert len(done) == 1 and done[0]["data"]["published"] == 9 and done[0]["run_id"] == s.run_id
        assert len(rx.posts) == 5  # 3 products + run end + the retried 503
        # the dead receiver: every event failed after its retries, recorded in the report
        assert s.webhooks_sent == 4 and len(s.webhook_failures) == 4
        assert all(f["subscriber"] == "sub1" and f["attempts"] == 3 for f in s.webhook_failures)
        report = json.loads(open(s.summary_uri).read())
        assert len(report["webhook_failures"]) == 4

        # a rerun writes nothing, so it announces no images: only the run's end
        before = len(rx.posts)
        again = catalog_run(str(catalog), brand=ACME, out=out, chunk_size=2, webhooks=_hooks(tmp_path, rx.url))
        assert again.published == 0
        assert [json.loads(b)["type"] for _, b in rx.posts[before:]] == ["run.completed"]


@pytest.mark.slow
def test_cloudfront_invalidation_of_written_objects(tmp_path, s3_bucket, s3_server, monkeypatch):
    import boto3

    cf = boto3.client("cloudfront", endpoint_url=s3_server, region_name="us-east-1")
    dist = cf.create_distribution(DistributionConfig={
        "CallerReference": "lightbox-test", "Comment": "", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "s3", "DomainName": f"{s3_bucket}.s3.amazonaws.com",
                                               "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "s3", "ViewerProtocolPolicy": "allow-all", "MinTTL": 0,
                                 "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                                 "TrustedSigners": {"Enabled": False, "Quantity": 0}},
    })["Distribution"]["Id"]
    monkeypatch.setenv("LIGHTBOX_CLOUDFRONT_DISTRIBUTION", dist)
    monkeypatch.setenv("LIGHTBOX_CLOUDFRONT_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("LIGHTBOX_CLOUDFRONT_PREFIX", "/images")
    catalog = make_catalog(tmp_path / "cat", n_good=2)
    out = f"s3://{s3_bucket}/live"
    s = catalog_run(str(catalog), brand=ACME, out=out, chunk_size=2)
    assert s.published == 6 and s.cdn_invalidation
    inv = cf.get_invalidation(DistributionId=dist, Id=s.cdn_invalidation)["Invalidation"]
    paths = sorted(inv["InvalidationBatch"]["Paths"]["Items"])
    assert paths == sorted(f"/images/acme-home/GOOD-{i}/{ch}.jpg" for i in range(2)
                           for ch in ("amazon_main", "google_merchant", "shopify_square"))
    again = catalog_run(str(catalog), brand=ACME, out=out, chunk_size=2)
    assert again.published == 0 and again.cdn_invalidation is None  # nothing written, nothing invalidated


@pytest.mark.slow
def test_two_runs_of_one_catalog_at_once_take_turns(tmp_path):
    catalog = make_catalog(tmp_path / "cat", n_good=3)
    out = str(tmp_path / "out")
    results = {}

    def run(name: str) -> None:
        results[name] = catalog_run(str(catalog), brand=ACME, out=out, chunk_size=1)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    a, b = results["a"], results["b"]
    assert sorted([a.published, b.published]) == [0, 9]  # one wrote everything, the other found it done
    assert sorted([a.generated, b.generated]) == [0, 9]
    manifest = _entries(tmp_path / "out")
    assert len(manifest) == 9 and len({e["run_id"] for e in manifest.values()}) == 1
    assert not list((tmp_path / "out").rglob("*.tmp*"))  # no partial objects left behind


def _review_spec(tmp_path, timeout_s: int) -> str:
    text = open(ACME).read()
    assert "  max_failed_share: 0.10" in text
    path = tmp_path / "acme-review.yaml"
    path.write_text(text.replace("  max_failed_share: 0.10",
                                 f"  max_failed_share: 0.10\n  review_pause: {{enabled: true, timeout_s: {timeout_s}}}"))
    return str(path)


def _paused_run_id(started_after: float, timeout: float = 120):
    import asyncio
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    async def paused():
        async with get_client() as client:
            runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
            return [r.id for r in runs if r.created.timestamp() >= started_after]

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = asyncio.run(paused())
        if found:
            return found[0]
        time.sleep(0.5)
    raise AssertionError("the run never paused for review")


@pytest.mark.slow
def test_operator_approves_flagged_skus_while_the_run_waits(tmp_path, monkeypatch):
    """review_pause: the run pauses with flagged outputs in review; the operator approves one SKU in the
    UI's form (resume_flow_run with input); its outputs are published, the other flagged SKU's are not."""
    import time

    from prefect.flow_runs import resume_flow_run

    monkeypatch.setenv("LIGHTBOX_TEST_HOOK_SECRET", SECRET)
    catalog = make_catalog(tmp_path / "cat", n_good=2)
    add_thumbnail(catalog, "THUMB-1")
    add_thumbnail(catalog, "THUMB-2")
    out = tmp_path / "out"
    results = {}
    started = time.time() - 1
    with WebhookReceiver() as rx:
        t = threading.Thread(target=lambda: results.setdefault("state", catalog_run(
            str(catalog), brand=_review_spec(tmp_path, 300), out=str(out), webhooks=_hooks(tmp_path, rx.url),
            return_state=True)))
        t.start()
        run_id = _paused_run_id(started)
        assert not (out / "acme-home" / "THUMB-1").exists()  # flagged: nothing live while waiting
        deadline = time.monotonic() + 60
        while True:  # the form's schema is saved just after the state turns Paused
            try:
                resume_flow_run(run_id, run_input={"decision": "approve_skus", "skus": ["THUMB-1", "NOT-FLAGGED"]})
                break
            except RuntimeError as e:
                if "schema not found" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        t.join(timeout=300)
        announced = {json.loads(b)["data"]["sku"] for _, b in rx.posts if json.loads(b)["type"] == "image.published"}
    state = results["state"]
    live = sorted(p.parent.name for p in (out / "acme-home").glob("*/amazon_main.jpg"))
    assert live == ["GOOD-0", "GOOD-1", "THUMB-1"]  # approved; THUMB-2 stays in review
    assert announced == {"GOOD-0", "GOOD-1", "THUMB-1"}  # approved images are announced too
    manifest = _entries(out)
    assert "approved by an operator" in " ".join(manifest["THUMB-1/amazon_main"]["qc_reasons"])
    assert "THUMB-2/amazon_main" not in manifest
    assert state.name == "QualityAlarm"  # the measurement stands: half the attempted outputs failed the gate


@pytest.mark.slow
def test_without_a_decision_flagged_outputs_stay_unpublished(tmp_path):
    catalog = make_catalog(tmp_path / "cat", n_good=1)
    add_thumbnail(catalog)
    out = tmp_path / "out"
    state = catalog_run(str(catalog), brand=_review_spec(tmp_path, 2), out=str(out), return_state=True)
    assert state.name == "QualityAlarm"  # the run went on after the timeout and finished normally
    assert sorted(p.parent.name for p in (out / "acme-home").glob("*/amazon_main.jpg")) == ["GOOD-0"]
    assert len(list((out / "acme-home" / "_review").glob("*/THUMB-1/*.jpg"))) == 3
