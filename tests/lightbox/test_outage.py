"""Storage outages are waited out: S3 (moto's server) behind a TCP proxy on loopback that refuses every
connection for 25 s in the middle of publishing; the run completes, nothing lost or written twice. And
the edges a crash leaves: temporary files never in live folders, earlier runs' staging swept."""

from __future__ import annotations

import os
import threading
import time

import boto3
import pytest
import s3fs

from lightbox.pipeline import run_plain
from lightbox.publish import sweep_stale
from lightbox.state import RunState
from lightbox.storage import TMP_DIR, Store
from tests.conftest import ACME
from tests.support.helpers import make_catalog
from tests.support.proxy import FlakyProxy, OutageWhenPublishing

pytestmark = pytest.mark.slow


def test_a_25_second_s3_outage_mid_publish_is_waited_out(tmp_path, s3_bucket, s3_server, monkeypatch):
    proxy = FlakyProxy(int(s3_server.rsplit(":", 1)[1]))
    monkeypatch.setenv("LIGHTBOX_S3_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("LIGHTBOX_STORAGE_RETRY_S", "90")
    s3fs.S3FileSystem.clear_instance_cache()
    catalog = make_catalog(tmp_path / "cat", n_good=4)
    outage = OutageWhenPublishing(proxy, s3_server, s3_bucket, "live/acme-home/", 25)
    summary = run_plain(str(catalog), ACME, f"s3://{s3_bucket}/live", chunk_size=1, run_id="outage")
    assert outage.done()  # a real outage, mid-run
    proxy.down()
    assert summary.published == 12 and summary.failed == 0
    assert summary.storage_retries > 0 and summary.storage_waited_outputs >= 1  # the report names the outage
    # the outage's length, not only the backoff sleeps between attempts (a 25 s refusal read "0.2 s of retries")
    assert "waited out" in summary.markdown() and summary.storage_waited_s >= 10
    monkeypatch.setenv("LIGHTBOX_S3_ENDPOINT_URL", s3_server)
    s3fs.S3FileSystem.clear_instance_cache()
    store = Store(f"s3://{s3_bucket}/live")
    manifest = RunState.of(store).entries("acme-home")
    assert len(manifest) == 12
    assert all(store.sha256(store.key_of(e["uri"])) == e["sha256"] for e in manifest.values())


def test_an_outage_past_the_budget_fails_the_run_with_what_went_live_recorded(tmp_path, s3_bucket, s3_server, monkeypatch):
    """Storage goes away mid-chunk and stays away past the retry budget: the run fails, but the objects the
    chunk had already made live are recorded in the run state (its table does not live in the storage);
    once storage is back, the next run writes only what never went live."""
    proxy = FlakyProxy(int(s3_server.rsplit(":", 1)[1]))
    monkeypatch.setenv("LIGHTBOX_S3_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("LIGHTBOX_STORAGE_RETRY_S", "3")
    s3fs.S3FileSystem.clear_instance_cache()
    catalog = make_catalog(tmp_path / "cat", n_good=4)
    direct = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    cut = threading.Event()

    def live_keys() -> dict[str, str]:
        found = direct.list_objects_v2(Bucket=s3_bucket, Prefix="live/acme-home/").get("Contents", [])
        return {o["Key"]: o["ETag"] for o in found if o["Key"].endswith(".jpg") and "/_" not in o["Key"]}

    def cut_when_publishing() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not cut.is_set():
            if live_keys():
                proxy.down()
                cut.set()
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=cut_when_publishing)
    watcher.start()
    with pytest.raises(Exception):  # noqa: B017 - whichever storage call the outage met first
        run_plain(str(catalog), ACME, f"s3://{s3_bucket}/live", chunk_size=4, run_id="20261125T100000Z-outage00")
    watcher.join(timeout=30)
    assert cut.is_set()
    before = live_keys()
    assert 0 < len(before) < 12  # the outage came mid-chunk: some objects live, not all
    proxy.up()
    s3fs.S3FileSystem.clear_instance_cache()
    store = Store(f"s3://{s3_bucket}/live")
    recorded = RunState.of(store).entries("acme-home")
    # a PUT that landed while its answer was cut is not recorded: the next run re-renders it and finds it live
    assert len(before) - 1 <= len(recorded) <= len(before)
    assert all(store.key_of(e["uri"]) in {k.removeprefix("live/") for k in before} for e in recorded.values())
    again = run_plain(str(catalog), ACME, f"s3://{s3_bucket}/live", chunk_size=4, run_id="20261125T110000Z-resume00")
    # what was live but unrecorded is re-rendered to the same bytes: counted published (already live), not written
    assert again.unchanged == len(recorded) and again.published - again.already_live == 12 - len(before)
    assert again.already_live == len(before) - len(recorded)
    after = live_keys()
    assert {k: after[k] for k in before} == before  # nothing that was live was written again
    manifest = RunState.of(store).entries("acme-home")
    assert len(manifest) == 12 and all(e["etag"] for e in manifest.values())
    proxy.down()


def test_on_s3_an_object_overwritten_behind_the_manifest_is_not_unchanged(tmp_path, s3_bucket):
    """Same size, other bytes: the ETag recorded after the write no longer matches, so the output is
    rendered and published again instead of being trusted."""
    catalog = make_catalog(tmp_path / "cat", n_good=2)
    out = f"s3://{s3_bucket}/live"
    run_plain(str(catalog), ACME, out, chunk_size=2, run_id="first")
    store = Store(out)
    key = "acme-home/GOOD-1/amazon_main.jpg"
    good = store.read(key)
    store.write_atomic(key, good[:-3] + b"\x00\x00\x00")  # same size, not the recorded bytes
    again = run_plain(str(catalog), ACME, out, chunk_size=2, run_id="second")
    assert again.unchanged == 5 and again.generated == 1 and again.published == 1
    assert store.read(key) == good
    manifest = RunState.of(store).entries("acme-home")
    assert all(store.sha256(store.key_of(e["uri"])) == e["sha256"] for e in manifest.values())


def test_an_outage_longer_than_the_budget_fails_naming_the_storage(tmp_path, s3_bucket, s3_server, monkeypatch):
    proxy = FlakyProxy(int(s3_server.rsplit(":", 1)[1]))
    proxy.down()
    monkeypatch.setenv("LIGHTBOX_S3_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("LIGHTBOX_STORAGE_RETRY_S", "3")
    s3fs.S3FileSystem.clear_instance_cache()
    store = Store(f"s3://{s3_bucket}/live")
    t = time.monotonic()
    with pytest.raises(Exception) as err:
        store.write_atomic("acme-home/X/amazon_main.jpg", b"\xff\xd8x")
    assert time.monotonic() - t >= 3 and store.outage_retries >= 1  # waited its budget, retrying
    assert "amazon_main.jpg" in str(err.value) or "127.0.0.1" in str(err.value)


def test_temporary_files_stay_out_of_live_folders_and_stale_ones_are_swept(tmp_path):
    store = Store(str(tmp_path / "out"))
    store.write_atomic("acme/SKU-1/amazon_main.jpg", b"x")
    assert os.listdir(tmp_path / "out" / "acme" / "SKU-1") == ["amazon_main.jpg"]
    tmp = tmp_path / "out" / TMP_DIR
    (tmp / "dead.tmp").write_bytes(b"partial")  # what a killed process leaves
    old = time.time() - 7200
    os.utime(tmp / "dead.tmp", (old, old))
    (tmp / "fresh.tmp").write_bytes(b"being written")  # another process's write in progress
    for run in ("20260101T000000Z-aaaa", "20260102T000000Z-bbbb", "20261125T120000Z-cccc"):
        store.write_atomic(f"acme/_runs/{run}/staging/SKU-1/amazon_main.jpg", b"staged")
        store.write_atomic(f"acme/_runs/{run}/summary.json", b"{}")
    store.write_atomic("acme/_review/20260101T000000Z-aaaa/SKU-1/amazon_main.jpg", b"flagged")
    swept = sweep_stale(store, "acme", current_run="20261125T120000Z-cccc")
    assert swept == {"staging": 2, "temp_files": 1}
    assert sorted(os.listdir(tmp)) == ["fresh.tmp"]
    assert store.exists("acme/_runs/20261125T120000Z-cccc/staging/SKU-1/amazon_main.jpg")  # the live run's own
    assert not store.children("acme/_runs/20260101T000000Z-aaaa/staging")
    assert store.exists("acme/_runs/20260101T000000Z-aaaa/summary.json")  # reports stay
    assert store.exists("acme/_review/20260101T000000Z-aaaa/SKU-1/amazon_main.jpg")  # review waits for an operator
