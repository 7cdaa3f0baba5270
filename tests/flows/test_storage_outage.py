"""A storage outage longer than one operation's budget, that Prefect's task retries outlast: the run completes,
and the report counts the outage (it used to say nothing: the failed attempts' stores were gone with them)."""

from __future__ import annotations

import pytest
import s3fs

from flows.catalog_run import catalog_run
from tests.conftest import ACME
from tests.support.helpers import make_catalog
from tests.support.proxy import FlakyProxy, OutageWhenPublishing

pytestmark = [pytest.mark.flow, pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

OUTAGE_S = 30  # longer than an operation's budget (3 s below, plus the S3 client's own retries) and a task retry's delay (2 s)


def test_an_outage_that_task_retries_outlast_is_in_the_report(tmp_path, s3_bucket, s3_server, monkeypatch, caplog):
    proxy = FlakyProxy(int(s3_server.rsplit(":", 1)[1]))
    monkeypatch.setenv("LIGHTBOX_S3_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("LIGHTBOX_STORAGE_RETRY_S", "3")
    s3fs.S3FileSystem.clear_instance_cache()
    catalog = make_catalog(tmp_path / "cat", n_good=4)
    outage = OutageWhenPublishing(proxy, s3_server, s3_bucket, "live/acme-home/", OUTAGE_S)
    state = catalog_run(str(catalog), brand=ACME, out=f"s3://{s3_bucket}/live", chunk_size=1, return_state=True)
    assert outage.done()  # a real outage, mid-run
    proxy.down()
    assert state.is_completed(), state.message
    s = state.result()
    assert s.published == 12 and s.failed == 0  # nothing lost
    # chunks whose attempt gave up after its 3 s budget while the endpoint refused, and which Prefect retried
    retried = {getattr(r, "task_run_name", "") for r in caplog.records if "Retry 1/" in r.getMessage()}
    assert retried, "the outage should outlast an attempt's budget"
    # what their failed attempts waited is in the report, charged to one output of each such chunk (before:
    # only waits inside attempts that succeeded were counted: storage_retries 0 with four chunks retried)
    assert s.storage_waited_outputs >= len(retried) and s.storage_waited_s >= 3 * len(retried)
    assert s.storage_line() and "waited out" in s.storage_line()

